"""The training engine: arrays and a config in, arrays and metrics out."""
import os

# torch's OpenMP worker threads spin while they wait for work. When another process shares
# the cores (the app's server, a browser, a second round), spinning threads slowed our
# small-batch training ~10x in measurements; passive waiting costs nothing measurable on
# large operations. It must be set before torch loads OpenMP, hence here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
