# pyexec bootstrap: the Python half of src/ngx_http_pyexec_interp.c.
# Compiled once per worker, in the interpreter thread, as module "_pyexec".
# Turned into src/ngx_http_pyexec_bootstrap.h by `make` (tools/py2c.sh).
# Frames of this file are named "<pyexec>" and hidden from user tracebacks.

import ast
import base64
import builtins
import io
import linecache
import os
import sys
import time
import warnings
import zlib


class TimeoutError(BaseException):
    """Raised into a cell that ran past its time limit.

    A BaseException, so `except Exception` in user code does not swallow it.
    """


TimeoutError.__module__ = "builtins"    # shown as plain "TimeoutError"


class _Capture(io.TextIOBase):
    """A text stream that keeps at most `cap` characters."""

    def __init__(self, cap):
        self._parts = []
        self._room = cap
        self.truncated = False

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not "
                            + type(s).__name__)
        n = len(s)
        if n <= self._room:
            self._parts.append(s)
            self._room -= n
        else:
            if self._room > 0:
                self._parts.append(s[:self._room])
                self._room = 0
            self.truncated = True
        return n

    def getvalue(self):
        return "".join(self._parts)

    def writable(self):
        return True

    def isatty(self):
        return False

    def flush(self):
        pass

    @property
    def encoding(self):
        return "utf-8"

    @property
    def errors(self):
        return "strict"


class _Discard(_Capture):
    """Between cells: output of stray threads goes nowhere, never to nginx."""

    def __init__(self):
        super().__init__(0)

    def write(self, s):
        return len(s)


class _NoInput(io.TextIOBase):
    """stdin: input() fails at once instead of blocking the worker."""

    def readable(self):
        return True

    def read(self, size=-1):
        raise EOFError("input() is not available: pyexec has no stdin")

    def readline(self, size=-1):
        raise EOFError("input() is not available: pyexec has no stdin")

    def close(self):
        pass  # exit() and quit() close stdin before raising SystemExit

    def isatty(self):
        return False

    @property
    def encoding(self):
        return "utf-8"


_data_dir = None
_cache = {}
_CACHE_MAX = 1024
_enter = _leave = None


def setup(data_dir, c_enter, c_leave, signo, handler):
    global _data_dir, _enter, _leave
    import signal
    _data_dir = data_dir or None
    _enter, _leave = c_enter, c_leave
    sys.stdin = sys.__stdin__ = _NoInput()
    sys.stdout = sys.__stdout__ = _Discard()
    sys.stderr = sys.__stderr__ = _Discard()
    sys.argv = [""]
    signal.signal(signo, handler)
    # figures are rendered off-screen and returned; plt.show() is a no-op
    # that must neither block nor warn
    os.environ["MPLBACKEND"] = "Agg"
    warnings.filterwarnings("ignore", message=r"(?s).*(non-GUI backend|"
                            r"non-interactive).*cannot be shown")
    warnings.filterwarnings("ignore", message=r"(?s).*cannot show the figure")
    if _data_dir:
        os.makedirs(_data_dir, exist_ok=True)
        os.chdir(_data_dir)


def _compile(src):
    """Compile a cell once: (statements or None, last expression or None)."""
    hit = _cache.get(src)
    if hit is not None:
        return hit
    name = "<cell-%08x>" % zlib.crc32(src.encode("utf-8", "surrogatepass"))
    tree = ast.parse(src, name, "exec")
    expr = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        expr = compile(ast.Expression(tree.body.pop().value), name, "eval")
    body = compile(tree, name, "exec") if tree.body else None
    if len(_cache) >= _CACHE_MAX:
        for old in _cache.values():
            linecache.cache.pop(old[2], None)
        _cache.clear()
    hit = (body, expr, name)
    _cache[src] = hit
    linecache.cache[name] = (len(src), None, src.splitlines(True), name)
    return hit


def new_session(init):
    """A fresh namespace; `init` (pyexec_session_init) runs in it once."""
    ns = {"__name__": "__main__", "__builtins__": builtins}
    err = None
    if init:
        cap = _Capture(65536)
        sys.stdout = sys.stderr = cap
        try:
            exec(compile(init, "<pyexec_session_init>", "exec"), ns)
        except BaseException as e:
            err = "%s: %s" % (type(e).__name__, e)
        finally:
            sys.stdout = sys.stderr = _Discard()
    injected = {k: v for k, v in ns.items() if not k.startswith("__")}
    return ns, injected, err


def variables(ns, injected):
    """User-visible names: no dunders, nothing the server injected."""
    return [k for k, v in ns.items()
            if isinstance(k, str) and not k.startswith("__")
            and not (k in injected and injected[k] is v)]


def _describe(e):
    import traceback
    name = type(e).__name__
    try:
        msg = str(e)
    except BaseException:
        msg = "<unprintable %s>" % name
    try:
        te = traceback.TracebackException(type(e), e, e.__traceback__)
        te.stack = traceback.StackSummary.from_list(
            [f for f in te.stack if f.filename != "<pyexec>"])
        tb = "".join(te.format()).rstrip("\n").split("\n")
    except BaseException:
        tb = ["%s: %s" % (name, msg)]
    return name, ("%s: %s" % (name, msg)) if msg else name, tb


def _figures(err):
    """PNGs (base64) of the matplotlib figures open after a cell; closes
    them.  Only when the cell (or an earlier one) imported pyplot."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return []
    pngs = []
    try:
        for num in plt.get_fignums():
            buf = io.BytesIO()
            try:
                plt.figure(num).savefig(buf, format="png")
            except Exception as e:
                err.write("pyexec: figure %s could not be rendered: %s: %s\n"
                          % (num, type(e).__name__, e))
                continue
            pngs.append(base64.b64encode(buf.getvalue()).decode("ascii"))
    finally:
        plt.close("all")
    return pngs


def run(ns, src, cap):
    """Run one cell.  Returns the tuple interp.c turns into JSON:
    (result_text, stdout, stderr, has_value, value, value_repr,
     error_name, error, traceback, truncated, duration_ms, figures,
     plain_text)."""
    out = _Capture(cap)
    err = _Capture(cap)
    value = None
    has_value = False
    exc = None
    figures = []
    if _data_dir:
        try:
            os.chdir(_data_dir)
        except OSError:
            pass
    t0 = time.perf_counter()
    sys.stdout, sys.stderr = out, err
    try:
        _enter()
        try:
            body, expr, _ = _compile(src)
            if body is not None:
                exec(body, ns)
            if expr is not None:
                value = eval(expr, ns)
                has_value = True
        finally:
            try:
                # under the same time limit; kept when the cell failed
                figures = _figures(err)
            finally:
                _leave()
    except BaseException as e:
        exc = e
    finally:
        sys.stdout, sys.stderr = _Discard(), _Discard()
    duration = (time.perf_counter() - t0) * 1000.0

    error_name = error = tb = None
    if exc is not None:
        error_name, error, tb = _describe(exc)
        exc = None
        has_value = False
        value = None

    value_repr = None
    if has_value and value is not None:
        try:
            value_repr = repr(value)
        except BaseException as e:
            value_repr = "<repr() failed: %s: %s>" % (type(e).__name__, e)

    stdout = out.getvalue()
    text = stdout.rstrip()
    # the "text/plain" next to a figure: what was printed, else the value
    plain = text or (value_repr or "") if figures else None
    return (text, stdout, err.getvalue(), has_value, value,
            value_repr, error_name, error, tb,
            out.truncated or err.truncated, duration, figures, plain)
