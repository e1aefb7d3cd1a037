"""The study of issue 5: does two-way feedback beat one-way guidance and PPO alone?

Django-free. ``spec`` declares what runs (levels with thresholds and budgets, modes, seeds);
``runner`` runs it through ``workers.engine`` in a process pool, resumable; ``rundir`` and
``data`` read the runs back; ``stats`` (IQM, stratified bootstrap, rank tests), ``aggregate``,
``failures`` and ``figures`` compute what ``report`` writes to docs/results/ and the README.
``python -m study --help`` lists the commands.
"""
