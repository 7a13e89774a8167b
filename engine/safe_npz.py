"""Reading an `.npz` archive whose members may be pickled Python objects (MERTools' label
files are dicts of dicts saved with np.savez) without running anything they contain.

`np.load(allow_pickle=True)` unpickles whatever the file says, and a pickle can call any
function (`os.system` included); given a file that is not a zip at all it unpickles the
whole file. Here every member is read as an `.npy`: plain arrays without pickles, object
arrays through an unpickler that can build only numpy arrays, dtypes and scalars, and the
result must consist of dicts, lists, tuples, strings, numbers, None, booleans and numpy
scalars/arrays of plain dtypes. Anything else is refused with an `InputError` naming the
file, the member and what it tried to load.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np

from .errors import InputError, one_line

MAX_MEMBER_BYTES = 1 << 30   # a label file member; MER2024's whole label file is ~1 MB
_PLAIN_KINDS = "biufcUSO"    # bool, ints, floats, complex, str, bytes, object (checked inside)
_PLAIN_TYPES = (dict, list, tuple, str, bytes, int, float, complex, bool, type(None))


def _allowed_globals() -> dict[tuple[str, str], object]:
    """The callables an array pickle names, under the module names numpy 1.x and 2.x use."""
    reconstruct = np.zeros(1).__reduce__()[0]
    scalar = np.float64(0).__reduce__()[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _plain_dtype,
        ("_codecs", "encode"): _latin1_bytes,  # how protocol-2 pickles spell bytes
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return allowed


def _plain_dtype(spec, align=False, copy=False) -> np.dtype:
    """np.dtype for a type code such as 'f8', 'U12' or 'O8'; nothing structured."""
    if not isinstance(spec, str):
        raise _Refused(f"numpy.dtype({spec!r:.60})")
    dtype = np.dtype(spec, bool(align), bool(copy))
    if dtype.kind not in _PLAIN_KINDS or dtype.fields or dtype.subdtype:
        raise _Refused(f"numpy.dtype({spec!r:.60})")
    return dtype


def _latin1_bytes(text, encoding="latin1") -> bytes:
    if not isinstance(text, str) or encoding != "latin1":
        raise _Refused("_codecs.encode")
    return text.encode("latin1")


class _Refused(Exception):
    """What a pickle asked for that is not admitted (a global, or a type in the result)."""


class _ArrayUnpickler(pickle.Unpickler):
    _allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid):
        raise _Refused("a persistent reference")


def load_npz(path: Path) -> dict[str, object]:
    """Every `.npy` member of the archive by name (without `.npy`): arrays, and for 0-d object
    arrays the object they hold (a dict of samples, say)."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise InputError(f"{path}: unreadable label file (not an .npz archive: not a zip file)") from None
    except OSError as e:
        raise InputError(f"{path}: unreadable label file ({one_line(e)})") from None
    out: dict[str, object] = {}
    with archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy") or info.is_dir():
                continue  # np.savez writes only .npy members
            member = info.filename[:-len(".npy")]
            where = f"{path}: {member}"
            if info.file_size > MAX_MEMBER_BYTES:
                raise InputError(f"{where}: {info.file_size:,} bytes uncompressed, more than a label "
                                 f"file holds (limit {MAX_MEMBER_BYTES:,})")
            try:
                value = _read_member(archive, info)
            except _Refused as e:
                raise InputError(f"{where}: holds a pickled {e}, which is refused: a label file may hold "
                                 f"only dicts, lists, strings, numbers and numpy arrays") from None
            except InputError:
                raise
            except Exception as e:  # truncated, corrupt or not an .npy
                raise InputError(f"{path}: unreadable label file ({member}: {one_line(e)})") from None
            if isinstance(value, np.ndarray) and value.dtype == object and value.shape == ():
                value = value.item()
            out[member] = value
    return out


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> object:
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
        if not dtype.hasobject:
            pass  # plain array: read below, without pickles
        elif dtype != np.dtype(object):
            raise _Refused(f"structured array with object fields ({dtype})")
        else:
            array = _ArrayUnpickler(f, encoding="ASCII").load()
            if not isinstance(array, np.ndarray):
                raise _Refused(type(array).__name__)
            _check_plain(array)
            return array
    with archive.open(info) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def _check_plain(root: object) -> None:
    """Everything reachable from `root` is an admitted type (pickles can share and nest
    objects, so each is visited once, without recursion)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in _PLAIN_KINDS or value.dtype.fields or value.dtype.subdtype:
                raise _Refused(f"array of dtype {value.dtype}")
            if value.dtype == object:
                stack.extend(value.ravel().tolist())
        elif isinstance(value, np.generic):
            if value.dtype.kind not in _PLAIN_KINDS or value.dtype == object:
                raise _Refused(f"numpy scalar of dtype {value.dtype}")
        elif type(value) is dict:
            stack.extend(value.keys())
            stack.extend(value.values())
        elif type(value) is list or type(value) is tuple:
            stack.extend(value)
        elif type(value) not in _PLAIN_TYPES:
            raise _Refused(f"{type(value).__module__}.{type(value).__qualname__}")
