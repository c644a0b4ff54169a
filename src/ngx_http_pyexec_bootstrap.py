# pyexec bootstrap: the Python half of src/ngx_http_pyexec_interp.c.
# Compiled once per worker, in the interpreter thread, as module "_pyexec".
# Turned into src/ngx_http_pyexec_bootstrap.h by `make` (tools/py2c.sh).
# Frames of this file are named "<pyexec>" and hidden from user tracebacks.

import _thread
import ast
import base64
import builtins
import io
import linecache
import os
import signal
import sys
import threading
import time
import warnings
import zlib


class TimeoutError(BaseException):
    """Raised into a cell that ran past its time limit.

    A BaseException, so `except Exception` in user code does not swallow it.
    """


TimeoutError.__module__ = "builtins"    # shown as plain "TimeoutError"


class _TextSink(io.TextIOBase):
    """What print(), warnings and tracebacks ask of a text stream."""

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


def _check_str(s):
    if not isinstance(s, str):
        raise TypeError("write() argument must be str, not "
                        + type(s).__name__)


class _Capture(_TextSink):
    """A text stream that keeps at most `cap` characters."""

    def __init__(self, cap):
        self._parts = []
        self._room = cap
        self.truncated = False

    def write(self, s):
        _check_str(s)
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



class _Discard(_Capture):
    """Between cells: output of stray threads goes nowhere, never to nginx."""

    def __init__(self):
        super().__init__(0)

    def write(self, s):
        return len(s)


class _Router(_TextSink):
    """sys.stdout / sys.stderr for good: a write lands in the running
    cell's capture when it comes from the cell's thread or from a thread
    that the same session started; anything else (a thread an earlier
    session left running) is dropped, never shown to another session."""

    def __init__(self, which):
        self._which = which

    def write(self, s):
        me = _thread.get_ident()
        if me != _cell_thread and _owners.get(me) is not _cell_owner:
            _check_str(s)
            return len(s)
        return _cell_streams[self._which].write(s)



_cell_thread = None     # the interpreter thread, while a cell runs
_cell_owner = None      # the running cell's session namespace
_cell_streams = (_Discard(), _Discard())
_owners = {}            # thread ident -> the namespace of the session that
                        # started it (threads started by threads inherit)


def _start_new_thread(function, args, kwargs={}):
    me = _thread.get_ident()
    owner = _cell_owner if me == _cell_thread else _owners.get(me)

    def tagged():
        ident = _thread.get_ident()
        _owners[ident] = owner
        try:
            function(*args, **kwargs)
        finally:
            _owners.pop(ident, None)

    return _real_start_new_thread(tagged, ())


_real_start_new_thread = _thread.start_new_thread


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
_worker_pid = None
_recursion_limit = sys.getrecursionlimit()

# signals that nginx or pyexec handle in the worker: a Python handler for
# one of them would take it from nginx (stop, reload, child reaping, the
# cell time limit); the timer signals stay the user's
_OWN_SIGNALS = set()


def _refuse_exit(name):
    real = getattr(os, name)

    def guarded(*args):
        if os.getpid() != _worker_pid:
            return real(*args)      # a fork()ed child (multiprocessing)
        raise SystemExit("os.%s() would end the pyexec worker and every "
                         "session on it: refused" % name)

    guarded.__name__ = name
    guarded.__doc__ = real.__doc__
    return guarded


def _refuse_kill(name):
    real = getattr(os, name)

    def guarded(pid, sig):
        if sig != 0 and os.getpid() == _worker_pid:
            own = {os.getpid(), os.getppid(), os.getpgid(0)}
            target = abs(pid) if name == "kill" else pid
            if pid in (0, -1) or target in own:
                raise PermissionError(
                    1, "signalling the pyexec worker or its master is "
                       "refused (os.%s(%d, %d))" % (name, pid, sig))
        return real(pid, sig)

    guarded.__name__ = name
    guarded.__doc__ = real.__doc__
    return guarded


def _refuse_signal(real):
    def guarded(signalnum, handler):
        if os.getpid() == _worker_pid and int(signalnum) in _OWN_SIGNALS:
            raise ValueError("signal %d is nginx's or pyexec's in this "
                             "worker: refused" % signalnum)
        return real(signalnum, handler)

    guarded.__name__ = "signal"
    guarded.__doc__ = real.__doc__
    return guarded


def setup(data_dir, c_enter, c_leave, signo, handler):
    global _data_dir, _enter, _leave, _worker_pid
    _data_dir = data_dir or None
    _enter, _leave = c_enter, c_leave
    _worker_pid = os.getpid()
    sys.stdin = sys.__stdin__ = _NoInput()
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__ = _ROUTERS
    sys.argv = [""]
    signal.signal(signo, handler)
    # user code may fork, start threads and play with signals; what it
    # must not do is end or deafen the worker that holds other sessions
    _OWN_SIGNALS.update(int(n) for n in (
        signo, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM,
        signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGCHLD,
        signal.SIGIO, signal.SIGPIPE, signal.SIGSYS))
    signal.signal = _refuse_signal(signal.signal)
    os._exit = _refuse_exit("_exit")
    os.abort = _refuse_exit("abort")
    os.kill = _refuse_kill("kill")
    os.killpg = _refuse_kill("killpg")
    threading._start_new_thread = _start_new_thread
    _thread.start_new_thread = _thread.start_new = _start_new_thread
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
        _begin(ns, cap, cap)
        try:
            exec(compile(init, "<pyexec_session_init>", "exec"), ns)
        except BaseException as e:
            err = "%s: %s" % (type(e).__name__, e)
        finally:
            _end()
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


def _begin(ns, out, err):
    global _cell_thread, _cell_owner, _cell_streams
    _cell_streams = (out, err)
    _cell_owner = ns
    _cell_thread = _thread.get_ident()
    sys.stdout, sys.stderr = _ROUTERS


def _end():
    """After every cell: output goes nowhere, and what one cell may have
    changed for the whole worker is put back."""
    global _cell_thread, _cell_owner, _cell_streams
    _cell_thread = _cell_owner = None
    _cell_streams = _DISCARDS
    sys.stdout, sys.stderr = _ROUTERS
    if sys.getrecursionlimit() != _recursion_limit:
        sys.setrecursionlimit(_recursion_limit)


_ROUTERS = (_Router(0), _Router(1))
_DISCARDS = (_Discard(), _Discard())


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
    value_repr = None
    _begin(ns, out, err)
    try:
        _enter()
        try:
            body, expr, _ = _compile(src)
            if body is not None:
                exec(body, ns)
            if expr is not None:
                value = eval(expr, ns)
                has_value = True
                if value is not None:
                    # user code too: under the time limit
                    try:
                        value_repr = repr(value)
                    except Exception as e:
                        value_repr = "<repr() failed: %s: %s>" % (
                            type(e).__name__, e)
        finally:
            try:
                # under the same time limit; kept when the cell failed
                figures = _figures(err)
            finally:
                _leave()
    except BaseException as e:
        exc = e
    finally:
        _end()
    duration = (time.perf_counter() - t0) * 1000.0

    error_name = error = tb = None
    if exc is not None:
        error_name, error, tb = _describe(exc)
        exc = None
        has_value = False
        value = None
        value_repr = None

    stdout = out.getvalue()
    text = stdout.rstrip()
    # the "text/plain" next to a figure: what was printed, else the value
    plain = text or (value_repr or "") if figures else None
    return (text, stdout, err.getvalue(), has_value, value,
            value_repr, error_name, error, tb,
            out.truncated or err.truncated, duration, figures, plain)
