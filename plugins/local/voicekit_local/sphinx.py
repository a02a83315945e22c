"""pocketsphinx's decoder through its C API, so decoding never holds the interpreter.

The Python bindings keep the GIL while they load a model (a quarter second) and while
they decode, so a worker thread decoding one call froze the event loop that paces every
other call's audio (stalls of 160 to 260 ms measured). ctypes releases the GIL for the
length of each foreign call, so here the same library, the one the pocketsphinx package
ships, is called through ctypes: the decoding runs truly beside the event loop.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

__all__ = ["SphinxDecoder"]

_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


def _library() -> ctypes.CDLL:
    global _lib
    with _lib_lock:
        if _lib is None:
            from pocketsphinx import _pocketsphinx

            lib = ctypes.CDLL(_pocketsphinx.__file__)
            p = ctypes.c_void_p
            lib.ps_config_init.argtypes, lib.ps_config_init.restype = [p], p
            lib.ps_config_set_str.argtypes = [p, ctypes.c_char_p, ctypes.c_char_p]
            lib.ps_config_set_str.restype = p
            lib.ps_config_set_int.argtypes = [p, ctypes.c_char_p, ctypes.c_long]
            lib.ps_config_set_int.restype = p
            lib.ps_config_free.argtypes, lib.ps_config_free.restype = [p], ctypes.c_int
            lib.ps_init.argtypes, lib.ps_init.restype = [p], p
            lib.ps_free.argtypes, lib.ps_free.restype = [p], ctypes.c_int
            lib.ps_start_utt.argtypes, lib.ps_start_utt.restype = [p], ctypes.c_int
            lib.ps_end_utt.argtypes, lib.ps_end_utt.restype = [p], ctypes.c_int
            lib.ps_process_raw.argtypes = [
                p,
                ctypes.c_char_p,
                ctypes.c_size_t,
                ctypes.c_int,
                ctypes.c_int,
            ]
            lib.ps_process_raw.restype = ctypes.c_int
            lib.ps_get_hyp.argtypes = [p, ctypes.POINTER(ctypes.c_int32)]
            lib.ps_get_hyp.restype = ctypes.c_char_p
            lib.err_set_loglevel_str.argtypes = [ctypes.c_char_p]
            lib.err_set_loglevel_str.restype = ctypes.c_char_p
            lib.err_set_loglevel_str(b"FATAL")  # it logs every utterance otherwise
            _lib = lib
    return _lib


class SphinxDecoder:
    """One decoder with the bundled US English model at 16 kHz. Every method blocks
    (with the GIL released): call them from a worker thread. A lock serialises them, so
    closing while another thread decodes waits instead of freeing memory in use."""

    def __init__(self) -> None:
        from pocketsphinx import get_model_path

        self._lock = threading.Lock()
        self._ps: int | None = None
        lib = self._lib = _library()
        model = Path(get_model_path()) / "en-us"
        config = lib.ps_config_init(None)
        if not config:
            raise RuntimeError("pocketsphinx: cannot create a configuration")
        try:
            for name, value in (
                ("hmm", model / "en-us"),
                ("lm", model / "en-us.lm.bin"),
                ("dict", model / "cmudict-en-us.dict"),
                ("loglevel", "FATAL"),
            ):
                lib.ps_config_set_str(config, name.encode(), str(value).encode())
            lib.ps_config_set_int(config, b"samprate", 16000)
            self._ps = lib.ps_init(config)
        finally:
            lib.ps_config_free(config)
        if not self._ps:
            raise RuntimeError(f"pocketsphinx: cannot load the model in {model}")

    def _decoder(self) -> int:
        if not self._ps:
            raise RuntimeError("pocketsphinx: the decoder is closed")
        return self._ps

    def start_utt(self) -> None:
        with self._lock:
            if self._lib.ps_start_utt(self._decoder()) < 0:
                raise RuntimeError("pocketsphinx: cannot start an utterance")

    def process_raw(self, audio: bytes) -> None:
        """Decode 16-bit little-endian PCM (whole samples)."""
        with self._lock:
            if self._lib.ps_process_raw(self._decoder(), audio, len(audio) // 2, 0, 0) < 0:
                raise RuntimeError("pocketsphinx: decoding failed")

    def end_utt(self) -> None:
        with self._lock:
            self._lib.ps_end_utt(self._decoder())

    def hyp(self) -> str:
        """The best hypothesis so far (lower case words)."""
        with self._lock:
            score = ctypes.c_int32()
            text = self._lib.ps_get_hyp(self._decoder(), ctypes.byref(score))
            return text.decode("utf-8", "replace").strip() if text else ""

    def close(self) -> None:
        with self._lock:
            if self._ps:
                self._lib.ps_free(self._ps)
                self._ps = None

    def __del__(self) -> None:
        self.close()
