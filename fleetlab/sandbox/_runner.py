"""The first and last code to run inside the sandbox; executed as ``python -c <this source>``.

It reads the run's nonce from stdin before any other code runs (then stdin is /dev/null),
sets the resource limits, runs the script as ``__main__`` with the working directory first
on ``sys.path``, and writes the nonce to the result pipe only if the script returned
normally. Any exception, ``SystemExit`` included, is a failure with the traceback on stderr.

It imports nothing from fleetlab (it runs in the bare base interpreter) and keeps its
start-up imports to the few modules the interpreter has already loaded.
"""

import os
import sys


def _flush() -> None:
    # Not contextlib.suppress: importing it would slow every start-up.
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:  # whatever the script did to its streams, go on
            pass


def _run(result_fd: int, limits: str, nice: int, strict: bool) -> None:
    os.set_inheritable(result_fd, False)
    token = b""
    while chunk := os.read(0, 256):
        token += chunk
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)

    import resource

    names = ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_NPROC", "RLIMIT_CORE")
    for name, value in zip(names, map(int, limits.split(",")), strict=True):
        if value < 0:
            continue
        hard = value + 1 if name == "RLIMIT_CPU" else value  # SIGXCPU first, then SIGKILL
        try:
            resource.setrlimit(getattr(resource, name), (value, hard))
        except (OSError, ValueError):
            if strict:
                raise
    os.nice(nice)

    script = sys.argv[0]
    here = os.getcwd()
    sys.path.insert(0, here)
    os.environ["PYTHONPATH"] = here  # for the Pythons the script starts
    main = type(sys)("__main__")
    main.__file__ = script
    sys.modules["__main__"] = main
    try:
        with open(script, "rb") as source:
            code = compile(source.read(), script, "exec", dont_inherit=True)
        exec(code, main.__dict__)
    except SystemExit as exc:
        _flush()
        print(
            f"SystemExit({exc.code!r}): the script exited before its last line ran",
            file=sys.__stderr__,
            flush=True,
        )
        os._exit(1)
    except BaseException as exc:
        _flush()
        import traceback

        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != script:
            tb = tb.tb_next  # start the traceback at the script, not in this runner
        traceback.print_exception(type(exc), exc, tb or exc.__traceback__, file=sys.__stderr__)
        _flush()
        os._exit(1)
    _flush()
    os.write(result_fd, token)
    os._exit(0)


if __name__ == "__main__":
    _fd, _limits, _nice, _strict = sys.argv[1:5]
    del sys.argv[:5]
    _run(int(_fd), _limits, int(_nice), _strict == "1")
