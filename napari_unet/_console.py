"""The ``napari-unet`` console script as a process: one-line errors and notes on
stderr, exit codes, Ctrl+C and SIGTERM (never a traceback, never a half-written file)
and a quick exit once the work is written. :mod:`napari_unet.cli` holds the commands.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Callable

from .core.errors import DefaultModelMissing, UserInputError

PROG = "napari-unet"
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def one_line(message: str) -> str:
    return " ".join(str(message).split())


def error(message: str) -> int:
    sys.stdout.flush()
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def note(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def import_tensorflow() -> None:
    """Import TensorFlow with its start-up chatter filtered out of stderr."""
    from .core._tfload import quiet_import_tensorflow

    quiet_import_tensorflow()


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cluster job's time limit, ``kill``): unwind like Ctrl+C, so every
    temporary file is removed on the way out."""


def on_sigterm(signum, frame):
    raise Terminated


#: Ctrl+C or SIGTERM that landed in a finaliser, where Python can only report it.
_lost_interrupts: list[KeyboardInterrupt] = []


def quiet_unraisable(unraisable) -> None:
    """Ctrl+C landing in a finaliser (TensorFlow tracing, a closing file, a released
    memory map) is not worth a traceback, but must not be lost either: it is kept and
    raised again at the next check (:func:`raise_lost_interrupt`). Anything else is
    reported as Python would."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        _lost_interrupts.append(unraisable.exc_value)
        return
    sys.__unraisablehook__(unraisable)


def raise_lost_interrupt() -> None:
    """Raise a Ctrl+C or SIGTERM that a finaliser swallowed, if there was one."""
    if _lost_interrupts:
        e = _lost_interrupts[0]
        _lost_interrupts.clear()
        raise e


def run_command(args) -> int:
    """Run ``args.func(args)`` and turn whatever ends it into an exit status (one line
    on stderr); SIGTERM unwinds like Ctrl+C while it runs."""
    old_term = old_int = old_hook = None
    if threading.current_thread() is threading.main_thread():
        old_term = signal.signal(signal.SIGTERM, on_sigterm)
        # Python leaves Ctrl+C ignored when it started ignored (a job started in the
        # background by a non-interactive shell, some CI runners); `train` always took
        # it over to stop after the batch, and every command now answers it alike
        old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
        old_hook, sys.unraisablehook = sys.unraisablehook, quiet_unraisable
    try:
        return _run(args)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
            signal.signal(signal.SIGINT, old_int)
            sys.unraisablehook = old_hook


def _run(args) -> int:
    _lost_interrupts.clear()
    try:
        code = int(args.func(args) or 0)
        raise_lost_interrupt()
        return code
    except DefaultModelMissing as e:
        return error(
            f"{e}; name a model file with --model MODEL.keras (train one with '{PROG} train')"
        )
    except UserInputError as e:
        return error(str(e))
    except KeyboardInterrupt as e:
        sys.stdout.flush()
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        note(f"{what}; nothing was saved" if args.command == "train" else what)
        return EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED
    except MemoryError:
        return error("not enough memory; use smaller images, --tile-size or --batch-size")
    except OSError as e:
        from .core.files.outputs import os_error_message

        return error(os_error_message(e))
    except Exception as e:  # noqa: BLE001
        # numpy/tifffile report a short write on a full disk as "N requested and M written"
        if re.search(r"requested and \d+ written", str(e)):
            return error("no space left on device; free some disk space or write elsewhere")
        # anything else is a bug: show the traceback, then one line
        traceback.print_exc()
        error(
            f"unexpected {type(e).__name__}: {e} (this is a bug in napari-unet; please "
            f"report it with the traceback above)"
        )
        return 1


def exit_now(code: int) -> None:
    """Leave the process with ``code``.

    Once TensorFlow is loaded, Python's own shutdown spends 1–2 s taking its thread
    pools and kernels apart after the work is done (measured: 1.7 s after a training
    run on 2 cores). By the time a command returns every output file is written
    and closed, so the exit handlers run (logging, temporary files) and the process
    leaves at once.
    """
    if "tensorflow" in sys.modules:
        import atexit

        run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
        if run_exit_handlers is not None:
            run_exit_handlers()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def train_until_interrupted(net, pairs, cfg, progress: Callable):
    """Train; the first Ctrl+C stops after the batch (then exits as interrupted), a
    second one at once."""
    stop = threading.Event()

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        note("interrupted: stopping after this batch (Ctrl-C again to quit at once)")

    old_handler = None
    if threading.current_thread() is threading.main_thread():
        old_handler = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = net.train(pairs, cfg, progress=progress, stop_event=stop)
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
    if stop.is_set():
        raise KeyboardInterrupt
    return result
