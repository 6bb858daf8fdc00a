"""symgrad's benchmarks: ``python -m benchmarks`` (``--help``).

For every workload (W0, W1, W3, W4 of ``docs/workloads.md`` and the scaling sweeps) and every
implementation that is available (see :data:`benchmarks.config.IMPLEMENTATIONS`), it measures:

* **correctness** -- every implementation starts from the same initial values, takes the
  same batches (read-only arrays, the same objects) for ``workload.steps`` steps, and is
  compared with the hand-written numpy floor (``hand``, always run as the reference).
  Errors are relative to the largest loss of the reference run: the per-step losses, the
  final loss (evaluated in float64 by a plain numpy oracle at the final parameters, on the
  first batch) and the final parameters (``||p - p_ref|| / ||p_ref||`` over all of them).
  Beyond ``rtol`` (1e-4 for float32, 1e-9 for float64) the implementation is ``WRONG``,
  however fast it is;
* **time per step** -- repetitions interleaved across implementations: in each repetition
  every implementation runs one block of steps, in a freshly shuffled order, so machine
  drift hits all alike. Reported: median, min, max, IQR and MAD of the per-step time over
  the repetitions; the ratio to ``hand`` and the speed-up over ``tape`` are ratios of the
  medians shown (so they cannot contradict them); the medians of the per-repetition paired
  ratios are kept too, and a table notes where the two disagree (unsteady timings). With
  ``--isolated`` every implementation runs in its own processes instead (one per workload
  and pass, round-robin, the same thread settings; correctness runs included), and the
  time is the median over the passes (:mod:`benchmarks.isolated`);
* **peak memory** -- in a new process, the tracemalloc peak of ``setup`` and a few training
  steps of a fresh instance: what ``setup`` keeps (parameters, buffers, optimizer state)
  plus the steps' high-water mark (work buffers a step allocates, even once, count).
  numpy's buffers are traced; PyTorch's and XLA's are not (reported as n/a);
* **compile time** (symgrad) -- in a *new* Python process with ``SYMGRAD_CACHE_DIR`` set to
  a fresh empty directory: the time to build the expression and compile the train step
  (cold), then in another new process on the same cache (warm: a cache hit); each
  process also times its own ``import symgrad``, which is not included.

The default run is the quick one (short runs, a few sweep points: well under a minute on
2 cores); ``--full`` runs every sweep point with longer timings (about 12 minutes). BLAS
runs on one thread unless ``--threads N`` (threadpoolctl when installed, else the
environment variables of :data:`benchmarks.THREAD_VARS`, set before numpy is imported).

Results go to the terminal (tables and a legend of their columns; with ``--targets`` the
performance goals of the generated-code issue as a PASS/MISS checklist), and optionally to
JSON, Markdown and PNG plots.

The modules, one concern each:

* :mod:`benchmarks.workloads` -- the problems, described once for every implementation;
* :mod:`benchmarks.config` -- the settings of a run and the registry of implementations;
* :mod:`benchmarks.check` -- correctness against the reference;
* :mod:`benchmarks.measure` -- time per step, peak memory, compile time;
* :mod:`benchmarks.isolated` -- ``--isolated``: each implementation in its own processes;
* :mod:`benchmarks.machine` -- the machine's description and its BLAS threads;
* :mod:`benchmarks.suite` -- one run, workload by workload, into the report (its JSON
  layout is described there);
* :mod:`benchmarks.targets` -- the performance goals, PASS/MISS;
* :mod:`benchmarks.report`, :mod:`benchmarks.plots` -- the report as text, Markdown, PNG;
* :mod:`benchmarks.progress` -- the progress line;
* :mod:`benchmarks.cli` -- the command line (``__main__`` sets the threads and calls it).

``benchmarks.hand`` is the hand-written numpy floor (and the Python-float floor of W0 and W4,
the ``floats`` implementation); ``benchmarks.impl_*`` are the adapters
(one per framework) the suite times side by side.
"""

#: Environment variables that set the thread count of BLAS and OpenMP (``--threads``).
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
               "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
