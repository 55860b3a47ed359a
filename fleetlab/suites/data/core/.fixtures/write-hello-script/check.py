"""hello.py prints exactly one line, `Hello, fleet!`."""

import contextlib
import io
import runpy

out = io.StringIO()
with contextlib.redirect_stdout(out):
    runpy.run_path("hello.py", run_name="__main__")
assert out.getvalue() == "Hello, fleet!\n", f"hello.py printed {out.getvalue()!r}"
