"""fastdiv's benchmark: ``python -m bench`` and the pytest-benchmark suite.

Every fastdiv backend is timed side by side with the tools a user would
otherwise reach for (SciPy, NumPy formulas, PyTorch, scikit-learn, each only
when installed), on the same arrays in the same process, after a correctness
gate against the ``reference`` backend. Times are set against the machine's
own read-bandwidth floor, measured in the same run.

Modules, one job each:

``cases``     the one registry of operations, their inputs and their peers
``data``      deterministic generated inputs
``gate``      correctness check of a result against the reference backend
``timing``    median wall time of a call after warm-up
``memory``    peak extra memory of a call
``floor``     the read-bandwidth floor (a parallel sum streaming the inputs once)
``runner``    runs every case and returns result records
``compile``   Numba first-call time with a cold and a warm cache
``machine``   CPU, SIMD path, threads and library versions
``cli``       argument parsing and the main program
``report``    the terminal table
``store``     the JSON file
``plot``      the PNG plot
``compare``   ratios against an earlier run
"""

#: Version of the JSON layout written by ``bench.store``.
SCHEMA = "fastdiv-bench/1"
