# pyexec's session init code: the shipped nginx.conf names this file in
# `pyexec_session_init_file`.  nginx reads it when the configuration is
# loaded (a change needs `nginx -s reload`), and it runs once at the
# start of every new session, in that session's own namespace (its
# `__main__`), before the session's first cell.  It predefines the names
# the replaced service did (plt, np, pd, sklearn) when the packages are
# installed.  Its output is discarded; an exception is logged at `warn`
# and the session still starts.
#
# The names it leaves behind stay in the session (not listed in
# `variables`, never re-injected over a user's own).  Names starting with
# `_` are not removed by pyexec: they go only because this code deletes
# them (`del _os, _tf` below; `_mpl` stays).

import os as _os, tempfile as _tf
_os.environ.setdefault('MPLCONFIGDIR', _os.path.join(_tf.gettempdir(), 'pyexec-mpl'))
try:
    import matplotlib as _mpl
    _mpl.use('Agg')
    import matplotlib.pyplot as plt
except ImportError:
    pass
try:
    import numpy as np
except ImportError:
    pass
try:
    import pandas as pd
except ImportError:
    pass
try:
    import sklearn
except ImportError:
    pass
del _os, _tf
