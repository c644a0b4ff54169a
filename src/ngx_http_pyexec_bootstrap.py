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
import operator
import os
import signal
import sys
import threading
import time
import types
import warnings
import weakref
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


class _Capture:
    """Where a cell's writes to one stream go (through its _Router, the
    sys.stdout users see): at most `cap` characters kept.  No io class:
    two of them die with every cell, and an io object's finalizer calls
    close() and flush() in Python."""

    __slots__ = ("_parts", "_room", "truncated", "cut_bytes")

    def __init__(self, cap):
        self._parts = []
        self._room = cap
        self.truncated = False
        self.cut_bytes = 0      # UTF-8 bytes written past the cap

    def write(self, s):
        if not isinstance(s, str):
            _check_str(s)
        n = len(s)
        room = self._room
        if n <= room:
            self._parts.append(s)
            self._room = room - n
        else:
            if room > 0:
                self._parts.append(s[:room])
                self._room = 0
            self.cut_bytes += len(s[room:].encode("utf-8", "surrogatepass"))
            self.truncated = True
        return n

    def getvalue(self):
        return "".join(self._parts)



class _Streamed(_Capture):
    """A cell's stdout or stderr: captured for the reply, and each write
    sent on to the execution's journal as it happens (interp.c's emit(),
    for a stream and for GET /executions/{id}/events)."""

    __slots__ = ("_kind",)

    def __init__(self, cap, kind):
        _Capture.__init__(self, cap)
        self._kind = kind

    def write(self, s):
        n = _Capture.write(self, s)
        if s:
            _emit(self._kind, s, True)
        return n


class _Discard(_Capture):
    """Between cells: output of stray threads goes nowhere, never to nginx."""

    __slots__ = ()

    def __init__(self):
        _Capture.__init__(self, 0)

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
        # _in_cell(), inline: this runs for every print()
        me = _thread.get_ident()
        if me != _cell_thread and (_cell_owner is None
                                   or _owners.get(me) is not _cell_owner):
            _check_str(s)
            return len(s)
        return _cell_streams[self._which].write(s)


def _in_cell():
    """Is this thread the running cell's, or one its session started."""
    me = _thread.get_ident()
    return me == _cell_thread or (_cell_owner is not None
                                  and _owners.get(me) is _cell_owner)



_emit = None            # interp.c's: an event of the running cell, journaled
_streams_same = None    # interp.c's: nothing _reset_streams() guards changed
_streams_mark = None    # interp.c's: remember how it all is now
_cell_thread = None     # the interpreter thread, while a cell runs
_cell_owner = None      # the running cell's session namespace
_cell_streams = (_Discard(), _Discard())
_cell_outputs = None    # the running cell's display() bundles
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
# each cell starts in the data folder; os.chdir() and os.fchdir() say when
# a cell moved (a chdir per cell was a path walk in the kernel each time)
_cwd_moved = False
_os_chdir = os.chdir
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


def _moving_cwd(name):
    real = getattr(os, name)

    def moving(*args, **kwargs):
        global _cwd_moved
        _cwd_moved = True
        return real(*args, **kwargs)

    moving.__name__ = name
    moving.__doc__ = real.__doc__
    return moving


def setup(data_dir, c_enter, c_leave, signo, handler, executable,
          c_disarm, c_stop_threads, grace_ms):
    global _data_dir, _enter, _leave, _disarm, _stop_threads, _grace_ms
    global _worker_pid, _PRISTINE
    _data_dir = data_dir or None
    _enter, _leave = c_enter, c_leave
    _disarm, _stop_threads, _grace_ms = c_disarm, c_stop_threads, grace_ms
    _worker_pid = os.getpid()
    sys.stdin = sys.__stdin__ = _STDIN
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__ = _ROUTERS
    sys.argv = [""]
    # the Debian interpreter the module embeds, for subprocess, the spawn
    # and forkserver start methods and loky (joblib, scikit-learn n_jobs)
    sys.executable = sys._base_executable = executable
    sys.meta_path.insert(0, _PostImport())
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
    os.chdir = _moving_cwd("chdir")
    os.fchdir = _moving_cwd("fchdir")
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
    for name, hook in _HOOKS.items():
        if name in sys.modules:
            hook(sys.modules[name])
    # what every session's builtins are copied from
    _PRISTINE = dict(builtins.__dict__)
    _PRISTINE["display"] = display
    _PRISTINE["__import__"] = _session_import
    for cls in _GUARDED_CLASSES:
        saved = dict(cls.__dict__)
        _CLASS_DICTS.append((cls, saved, tuple(saved), tuple(saved.values())))
    _mark_streams()


# {{{ modules patched when they are first imported

class _PostImport:
    """A meta path finder that lets the real finders load a module, then
    adjusts it: IPython's display() feeds the cell's outputs, and
    multiprocessing pickles functions and classes of __main__ by value."""

    _busy = set()

    def find_spec(self, name, path=None, target=None):
        hook = _HOOKS.get(name)
        if hook is None or name in self._busy:
            return None
        self._busy.add(name)
        try:
            import importlib.util
            spec = importlib.util.find_spec(name)
        finally:
            self._busy.discard(name)
        if spec is None or spec.loader is None:
            return spec
        real = spec.loader.exec_module

        def exec_module(module):
            real(module)
            try:
                hook(module)
            except Exception as e:
                sys.__stderr__.write("pyexec: adjusting %s failed: %s\n"
                                     % (name, e))

        spec.loader = _Loader(spec.loader, exec_module)
        return spec


class _Loader:
    def __init__(self, real, exec_module):
        self._real = real
        self.exec_module = exec_module

    def create_module(self, spec):
        return self._real.create_module(spec)

    def __getattr__(self, name):
        return getattr(self._real, name)


def _clear_output(wait=False):
    """IPython's clear_output(): there is no front end to clear."""


def _patch_ipython_display(mod):
    mod.display = display
    mod.clear_output = _clear_output


def _cloudpickle():
    """cloudpickle, or joblib's copy of it; looked up once (a module that
    is not there costs a walk of sys.path at every try)."""
    global _CP
    if _CP is False:
        _CP = None
        for name in ("cloudpickle", "joblib.externals.cloudpickle"):
            try:
                _CP = __import__(name, fromlist=["dumps"])
                break
            except ImportError:
                continue
    return _CP


_CP = False


def _by_value(self, obj):
    """ForkingPickler.reducer_override: a function or class defined in a
    cell travels by value (cloudpickle), so spawn and forkserver children,
    which never ran the cell, can use it; everything else as usual."""
    if (isinstance(obj, (types.FunctionType, type))
            and getattr(obj, "__module__", None) == "__main__"):
        cp = _cloudpickle()
        if cp is not None:
            return cp.loads, (cp.dumps(obj),)
    return NotImplemented


def _patch_forking_pickler(mod):
    mod.ForkingPickler.reducer_override = _by_value


def _patch_subprocess(mod):
    # fork(), not vfork() or posix_spawn(): the child handler of
    # src/ngx_http_pyexec_child.c (signals back to normal, nginx's sockets
    # closed) runs only in a fork()ed child
    mod._USE_VFORK = False
    mod._USE_POSIX_SPAWN = False
    real = mod.Popen._execute_child

    def _execute_child(self, *args, **kwargs):
        real(self, *args, **kwargs)
        _popens[self.pid] = self

    mod.Popen._execute_child = _execute_child


_HOOKS = {
    "IPython.core.display_functions": _patch_ipython_display,
    "multiprocessing.reduction": _patch_forking_pickler,
    "subprocess": _patch_subprocess,
}

# }}}
# {{{ display(): rich outputs of a cell

# the order Jupyter's front ends prefer, richest first
_MIME_ORDER = ("application/javascript", "text/html", "text/markdown",
               "text/latex", "image/svg+xml", "image/png", "image/jpeg",
               "application/pdf", "application/json", "text/plain")
_REPR_METHODS = (("text/html", "_repr_html_"),
                 ("text/markdown", "_repr_markdown_"),
                 ("text/latex", "_repr_latex_"),
                 ("image/svg+xml", "_repr_svg_"),
                 ("image/png", "_repr_png_"),
                 ("image/jpeg", "_repr_jpeg_"),
                 ("application/pdf", "_repr_pdf_"),
                 ("application/json", "_repr_json_"),
                 ("application/javascript", "_repr_javascript_"))
_BINARY = ("image/png", "image/jpeg", "application/pdf")


def _mime_data(mime, data):
    """A representation as the str that goes into JSON, or None."""
    if isinstance(data, tuple) and len(data) == 2:
        data = data[0]          # (data, metadata)
    if data is None:
        return None
    if mime in _BINARY:
        if isinstance(data, (bytes, bytearray, memoryview)):
            return base64.b64encode(bytes(data)).decode("ascii")
        return data if isinstance(data, str) else None
    if mime == "application/json" and not isinstance(data, str):
        import json
        return json.dumps(data)
    return data if isinstance(data, str) else str(data)


def _bundle(obj, include=None, exclude=None):
    """{mime: str} for one object, the way IPython's formatter builds it."""
    data = {}
    mb = getattr(type(obj), "_repr_mimebundle_", None)
    if mb is not None and not isinstance(obj, type):
        got = obj._repr_mimebundle_(include=include, exclude=exclude)
        if isinstance(got, tuple):
            got = got[0]
        for mime, d in (got or {}).items():
            d = _mime_data(mime, d)
            if d is not None:
                data[mime] = d
    if not isinstance(obj, type):
        for mime, meth in _REPR_METHODS:
            if mime in data or not hasattr(type(obj), meth):
                continue
            try:
                d = _mime_data(mime, getattr(obj, meth)())
            except Exception as e:
                # as IPython's formatter: said on stderr, the rest shown
                _cell_streams[1].write("%s.%s() failed: %s: %s\n" % (
                    type(obj).__name__, meth, type(e).__name__, e))
                continue
            if d is not None:
                data[mime] = d
    fig = sys.modules.get("matplotlib.figure")
    if fig is not None and isinstance(obj, fig.Figure) and "image/png" not in data:
        data["image/png"] = _png(obj)
    if "text/plain" not in data:
        data["text/plain"] = repr(obj)
    if include:
        data = {k: v for k, v in data.items() if k in include}
    if exclude:
        data = {k: v for k, v in data.items() if k not in exclude}
    return data


def display(*objs, include=None, exclude=None, metadata=None,
            transient=None, display_id=None, raw=False, clear=False,
            **kwargs):
    """display() as in IPython: each object adds one bundle to the cell's
    `outputs` (with raw=True, each object is a {mime: data} dict)."""
    if not _in_cell() or _cell_outputs is None:
        return None
    for obj in objs:
        if raw:
            data = {m: d for m, d in ((m, _mime_data(m, d))
                                      for m, d in dict(obj).items())
                    if d is not None}
        else:
            data = _bundle(obj, include, exclude)
        if data:
            _cell_outputs.add(data)
    return None


class _Outputs:
    """The display() bundles of one cell: each text capped like stdout,
    a binary one past the cap left out (and said so on stderr)."""

    __slots__ = ("items", "_cap", "_room", "truncated")

    def __init__(self, cap):
        self.items = []
        self._cap = cap
        self._room = 8 * cap
        self.truncated = False

    def add(self, data):
        kept = {}
        for mime, d in data.items():
            if len(d) > self._cap or len(d) > self._room:
                self.truncated = True
                if mime in _BINARY:
                    _cell_streams[1].write(
                        "pyexec: a %s output of %d bytes is over the output "
                        "cap; left out\n" % (mime, len(d)))
                    continue
                d = d[:min(self._cap, self._room)]
            self._room -= len(d)
            kept[mime] = d
        if not kept:
            return
        best = next((m for m in _MIME_ORDER if m in kept), None)
        if best is None:
            best = next(iter(kept))
        self.items.append((best, kept[best], tuple(kept.items())))
        if _emit is not None:
            import json
            _emit("display", json.dumps({"mime": best, "data": kept[best]}),
                  False)

# }}}
# {{{ child processes that nobody waits for

_popens = weakref.WeakValueDictionary()   # pid -> subprocess.Popen
_zombie_since = {}
_ZOMBIE_GRACE = 5.0


def _zombies():
    pids = []
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return pids
    for tid in tasks:
        try:
            with open("/proc/self/task/%s/children" % tid) as f:
                kids = f.read().split()
        except OSError:
            continue
        for pid in kids:
            try:
                with open("/proc/%s/stat" % pid) as f:
                    st = f.read()
            except OSError:
                continue
            if st[st.rfind(")") + 2:][:1] == "Z":
                pids.append(int(pid))
    return pids


def reap():
    """Between tasks: children that exited are reaped.  Python's own
    bookkeeping first (multiprocessing, subprocess keep their exit codes);
    a child that nothing tracks is reaped after a grace, so a cell may
    still waitpid() a child it forked in an earlier cell for a moment."""
    tracked = set()
    mp = sys.modules.get("multiprocessing.process")
    if mp is not None:
        try:
            mp.active_children()
            tracked.update(p._popen.pid for p in list(mp._children)
                           if getattr(p, "_popen", None) is not None)
        except Exception:
            pass
    sp = sys.modules.get("subprocess")
    if sp is not None:
        try:
            sp._cleanup()
            tracked.update(p.pid for p in list(sp._active))
        except Exception:
            pass
        for pid, p in list(_popens.items()):
            # what p.wait() would find later: poll() keeps the status
            if p.returncode is None and p.poll() is None:
                tracked.add(pid)
    now = time.monotonic()
    seen = {}
    for pid in _zombies():
        if pid in tracked:
            continue
        since = _zombie_since.get(pid, now)
        if now - since < _ZOMBIE_GRACE:
            seen[pid] = since
            continue
        try:
            os.waitpid(pid, os.WNOHANG)
        except OSError:
            pass
    _zombie_since.clear()
    _zombie_since.update(seen)

# }}}
# {{{ sessions


class _Session:
    """One session: its own __main__ module (the namespace) and its own
    builtins module, copied from the pristine builtins at creation."""

    __slots__ = ("main", "ns", "bmod", "loop")

    def __init__(self):
        self.main = types.ModuleType("__main__")
        self.ns = self.main.__dict__
        self.bmod = types.ModuleType("builtins")
        self.bmod.__dict__.update(_PRISTINE)
        self.ns["__builtins__"] = self.bmod
        self.loop = None


def _session_import(name, globals=None, locals=None, fromlist=(), level=0):
    """__import__ of every session's builtins: `import builtins` in a cell
    is the session's builtins module (found through the importing code's
    globals: no reference cycle, a deleted session is freed at once); the
    libraries keep the real one."""
    if name == "builtins" and not level and globals is not None:
        b = globals.get("__builtins__")
        if type(b) is types.ModuleType:
            return b
    return _real_import(name, globals, locals, fromlist, level)


_real_import = builtins.__import__
_NO_MAIN = types.ModuleType("__main__")     # between sessions


def close_session(sess):
    """The session is deleted: nothing of the worker keeps it alive, and
    the threads it left running are stopped (SystemExit, then at every
    line past the interrupt grace: interp.c's stop_threads())."""
    if sys.modules.get("__main__") is sess.main:
        sys.modules["__main__"] = _NO_MAIN
    ns = sess.ns
    idents = {i for i, owner in list(_owners.items()) if owner is ns}
    if idents:
        _stop_threads(idents, _grace_ms)
    loop = sess.loop
    sess.loop = None
    if loop is not None and not loop.is_running():
        try:
            loop.close()
        except Exception:
            pass


def _compile(src):
    """Compile a cell once: (statements or None, last expression or None).
    Top-level await is allowed, as in IPython: such a code object is a
    coroutine to run on the session's event loop."""
    hit = _cache.get(src)
    if hit is not None:
        return hit
    name = "<cell-%08x>" % zlib.crc32(src.encode("utf-8", "surrogatepass"))
    tree = ast.parse(src, name, "exec")
    expr = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        expr = compile(ast.Expression(tree.body.pop().value), name, "eval",
                       _AWAIT)
    body = compile(tree, name, "exec", _AWAIT) if tree.body else None
    if len(_cache) >= _CACHE_MAX:
        for old in _cache.values():
            linecache.cache.pop(old[2], None)
        _cache.clear()
    hit = (body, expr, name)
    _cache[src] = hit
    linecache.cache[name] = (len(src), None, src.splitlines(True), name)
    return hit


_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
_CO_COROUTINE = 0x0080


def _eval(code, sess):
    """exec/eval one compiled part of a cell in the session."""
    if not code.co_flags & _CO_COROUTINE:
        return eval(code, sess.ns)
    import asyncio
    if sess.loop is None or sess.loop.is_closed():
        sess.loop = asyncio.new_event_loop()
    loop = sess.loop
    asyncio.set_event_loop(loop)
    task = loop.create_task(eval(code, sess.ns))
    try:
        return loop.run_until_complete(task)
    except BaseException:
        task.cancel()
        raise


def new_session(init):
    """A fresh session; `init` (pyexec_session_init) runs in it once."""
    sess = _Session()
    ns = sess.ns
    err = None
    if init:
        cap = _Capture(65536)
        _begin(sess, cap, cap, None)
        try:
            exec(compile(init, "<pyexec_session_init>", "exec"), ns)
        except BaseException as e:
            err = "%s: %s" % (type(e).__name__, e)
        finally:
            _end()
    injected = {k: v for k, v in ns.items() if not k.startswith("__")}
    return sess, injected, err


def warm(init):
    """A worker's start: pyexec_session_init runs once in a scratch session,
    thrown away, so that its imports (pandas, scikit-learn...) are in
    sys.modules before the first session's first cell."""
    sess, _, err = new_session(init)
    close_session(sess)
    return err


def variables(sess, injected):
    """User-visible names: no dunders, nothing the server injected."""
    return [k for k, v in sess.ns.items()
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
    # no figure open (the common cell): nothing to render, nothing for
    # close("all") to do; pyplot's own calls cost more than the cell
    figs = getattr(getattr(sys.modules.get("matplotlib._pylab_helpers"),
                           "Gcf", None), "figs", None)
    if figs is not None and not figs:
        return []
    pngs = []
    try:
        for num in plt.get_fignums():
            try:
                pngs.append(_png(plt.figure(num)))
            except Exception as e:
                err.write("pyexec: figure %s could not be rendered: %s: %s\n"
                          % (num, type(e).__name__, e))
    finally:
        plt.close("all")
    return pngs


def _png(fig):
    """A matplotlib figure as base64 PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _begin(sess, out, err, outputs):
    global _cell_thread, _cell_owner, _cell_streams, _cell_outputs
    _cell_streams = (out, err)
    _cell_outputs = outputs
    _cell_owner = sess.ns
    _cell_thread = _thread.get_ident()
    # pickle, copy and multiprocessing look names up in __main__: the
    # session's, for this cell and for the threads it starts
    sys.modules["__main__"] = sess.main
    _reset_streams()


def _reset_streams():
    """Whatever a cell did to sys.stdout & co., the next one gets them
    as they were: the objects, their attributes, their classes.  Twice per
    cell: interp.c's _streams_same() says in a few compares of dict
    versions whether anything changed since _mark_streams()."""
    if _streams_same is not None and _streams_same():
        return
    for cls, saved, keys, values in _CLASS_DICTS:
        now = cls.__dict__
        if len(now) != len(saved) or any(map(_is_not, map(now.get, keys),
                                             values)):
            for k in [k for k in now if k not in saved]:
                delattr(cls, k)
            for k, v in saved.items():
                if k not in ("__dict__", "__weakref__", "__doc__") \
                        and now.get(k) is not v:
                    setattr(cls, k, v)
    for obj, cls, state in _STREAM_STATE:
        if type(obj) is not cls:
            try:
                obj.__class__ = cls
            except TypeError:
                pass
        d = obj.__dict__
        if d != state:
            d.clear()
            d.update(state)
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__ = _ROUTERS
    sys.stdin = sys.__stdin__ = _STDIN
    _mark_streams()


def _mark_streams():
    if _streams_mark is not None:
        _streams_mark(_GUARDED_CLASSES, _STREAM_OBJECTS,
                      _ROUTERS + _ROUTERS + (_STDIN, _STDIN))


def _end():
    """After every cell: output goes nowhere, and what one cell may have
    changed for the whole worker is put back."""
    global _cell_thread, _cell_owner, _cell_streams, _cell_outputs
    _cell_thread = _cell_owner = _cell_outputs = None
    _cell_streams = _DISCARDS
    # also after: the threads a cell left running print between cells
    _reset_streams()
    if sys.getrecursionlimit() != _recursion_limit:
        sys.setrecursionlimit(_recursion_limit)


_ROUTERS = (_Router(0), _Router(1))
_DISCARDS = (_Discard(), _Discard())
_STDIN = _NoInput()
_STREAM_OBJECTS = _ROUTERS + (_STDIN,)
_STREAM_STATE = [(o, type(o), dict(o.__dict__)) for o in _STREAM_OBJECTS]
_GUARDED_CLASSES = (_Router, _TextSink, _NoInput)
_is_not = operator.is_not
_CLASS_DICTS = []      # (class, its dict, its keys, its values) as set up
_PRISTINE = None


def _capped_repr(value, cap):
    """repr() of the last value, at most `cap` characters."""
    try:
        text = repr(value)
    except Exception as e:
        text = "<repr() failed: %s: %s>" % (type(e).__name__, e)
    if not isinstance(text, str):
        text = "<repr() returned %s>" % type(text).__name__
    if len(text) > cap:
        return text[:cap], True
    return text, False


def run(sess, src, cap):
    """Run one cell.  Returns the tuple interp.c turns into JSON:
    (result_text, stdout, stderr, has_value, value, value_repr,
     error_name, error, traceback, truncated, duration_ms, figures,
     plain_text, outputs, stdout_cut_bytes, stderr_cut_bytes); outputs are
    (mime, data, bundle pairs or None)."""
    global _cwd_moved
    if _emit is not None:
        out = _Streamed(cap, "stdout")
        err = _Streamed(cap, "stderr")
    else:
        out = _Capture(cap)
        err = _Capture(cap)
    outputs = _Outputs(cap)
    value = None
    has_value = False
    exc = None
    figures = []
    repr_cut = False
    if _cwd_moved and _data_dir:
        _cwd_moved = False
        try:
            _os_chdir(_data_dir)
        except OSError:
            pass
    t0 = time.perf_counter()
    value_repr = None
    _begin(sess, out, err, outputs)
    try:
        _enter()
        try:
            body, expr, _ = _compile(src)
            if body is not None:
                _eval(body, sess)
            if expr is not None:
                value = _eval(expr, sess)
                has_value = True
                if value is not None:
                    # user code too: under the time limit
                    value_repr, repr_cut = _capped_repr(value, cap)
        finally:
            # the cell's code is over: the ladder's stopper spares ours
            _disarm()
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
        repr_cut = False

    stdout = out.getvalue()
    text = stdout.rstrip()
    # the "text/plain" next to a figure: what was printed, else the value
    plain = text or (value_repr or "") if figures else None
    # outputs: the display() bundles, then the figures left open
    items = outputs.items + [("image/png", f, None) for f in figures]
    return (text, stdout, err.getvalue(), has_value, value,
            value_repr, error_name, error, tb,
            out.truncated or err.truncated or repr_cut or outputs.truncated,
            duration, figures, plain, items, out.cut_bytes, err.cut_bytes)


# --- durable sessions: checkpoints in pyexec_state_dir ---------------------
#
# A checkpoint is a pickle of {version, session id, execution count, names,
# modules, lost}: each name pickled on its own (dill when it is installed:
# cell-defined functions and classes by value; else cloudpickle, else
# pickle), modules by name (re-imported on restore).  Names that do not
# pickle are listed as lost with their type and the reason; past `cap`
# bytes the largest names are listed as lost instead of written.  Written
# to a temporary file and renamed: a worker crash mid-write never leaves a
# torn checkpoint.  A checkpoint is a pickle: loading one runs code, so the
# state folder must be as private as the server (interp.c checks it).

_CKPT_VERSION = 1


def _pickler():
    try:
        import dill
        return dill
    except ImportError:
        pass
    c = _cloudpickle()
    if c is not None:
        return c
    import pickle
    return pickle


_NO_MAIN = types.ModuleType("__main__")


def _dumps(p, v, sess):
    """One value's pickle: the standard library's C pickler first, with
    an empty __main__ so that anything it would only name (a function or
    class a cell defined) fails it; then the session's pickler (dill
    takes those by value).  dill's pure-Python pickler is ~35x slower on
    a 138 000-row DataFrame (850 ms vs 24 ms here, bench/fleet's data);
    dill.loads reads both."""
    import pickle
    if p is not pickle:
        sys.modules["__main__"] = _NO_MAIN
        try:
            return pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            pass
        finally:
            sys.modules["__main__"] = sess.main
    return p.dumps(v)


def checkpoint(sess, injected, path, sid, count, cap):
    """Write the session's checkpoint; returns the lost names."""
    import pickle
    p = _pickler()
    names = {}
    modules = {}
    lost = []
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = sess.main
    try:
        for k, v in list(sess.ns.items()):
            if not isinstance(k, str) or k.startswith("__"):
                continue
            if k in injected and injected[k] is v:
                continue
            if isinstance(v, types.ModuleType):
                modules[k] = v.__name__
                continue
            if isinstance(v, io.IOBase):
                # dill would reopen it by name: not the same open file
                lost.append((k, type(v).__name__, "an open file or stream "
                             "is not kept"))
                continue
            try:
                names[k] = _dumps(p, v, sess)
            except BaseException as e:
                lost.append((k, type(v).__name__,
                             "%s: %s" % (type(e).__name__, e)))
    finally:
        sys.modules["__main__"] = main
    total = sum(len(b) for b in names.values())
    for k in sorted(names, key=lambda k: len(names[k]), reverse=True):
        if total <= cap:
            break
        total -= len(names[k])
        lost.append((k, "bytes", "%d bytes: over pyexec_checkpoint_max"
                                 % len(names[k])))
        del names[k]
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            # streamed: the names' pickles are not copied into one more
            pickle.dump({"version": _CKPT_VERSION, "id": sid,
                         "count": count, "names": names,
                         "modules": modules, "lost": lost,
                         "pickler": p.__name__}, f, protocol=4)
        # no fsync: a worker that dies mid-write leaves only the .tmp; a
        # power cut may leave a short file, which restore() refuses.  The
        # one before stays as .prev: POST /sessions/{id}/rollback
        try:
            os.replace(path, path + ".prev")
        except FileNotFoundError:
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return lost


def rollback(sess, injected, path, sid, count, init, cap):
    """The session as it was before its last cell (execution count-1),
    from its checkpoint or the one before; None when neither is that one.
    The state rolled back to becomes the checkpoint."""
    for p in (path, path + ".prev"):
        try:
            r = restore(p, sid, init)
        except ValueError:
            r = None
        if r is not None and r[2] == count - 1:
            new, new_injected, n, lost = r
            close_session(sess)
            checkpoint(new, new_injected, path, sid, n, cap)
            return new, new_injected, n, lost
    return None


def restore(path, sid, init):
    """(sess, injected, from_execution, lost) from a checkpoint; None when
    there is none; ValueError with the reason when it cannot be used."""
    import pickle
    import importlib
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except FileNotFoundError:
        return None
    try:
        d = pickle.loads(blob)
    except BaseException as e:
        raise ValueError("checkpoint unreadable (%s: %s)"
                         % (type(e).__name__, e))
    if (not isinstance(d, dict) or d.get("version") != _CKPT_VERSION
            or not isinstance(d.get("names"), dict)
            or not isinstance(d.get("modules"), dict)
            or not isinstance(d.get("count"), int)):
        raise ValueError("checkpoint unreadable (not a pyexec checkpoint)")
    if d.get("id") != sid:
        raise ValueError("checkpoint of another session")
    sess, injected, err = new_session(init)
    lost = [tuple(x) for x in d.get("lost", [])]
    p = _pickler()
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = sess.main
    try:
        for k, m in d["modules"].items():
            try:
                sess.ns[k] = importlib.import_module(m)
            except BaseException as e:
                lost.append((k, "module", "%s: %s" % (type(e).__name__, e)))
        for k, b in d["names"].items():
            try:
                sess.ns[k] = p.loads(b)
            except BaseException as e:
                lost.append((k, "?", "%s: %s" % (type(e).__name__, e)))
    finally:
        sys.modules["__main__"] = main
    return sess, injected, d["count"], [(str(a), str(b), str(c))
                                         for a, b, c in lost]
