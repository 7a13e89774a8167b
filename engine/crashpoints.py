"""Named points at which a test can have the process killed, as a power cut or `kill -9`
would: how the tests show that every step of a commit can be interrupted and repaired.
Nothing happens unless MERSEMI_CRASH_AT names the point."""
import os
import signal

CRASH_ENV = "MERSEMI_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
