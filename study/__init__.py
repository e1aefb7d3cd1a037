"""The study: how much faster does two-way feedback make PPO, and how much of a perfect
teacher's gain does it capture?

Django-free but for ``lab``. ``spec`` declares what runs (levels with thresholds, budgets,
modes and guidance kinds; seeds); ``runner`` runs it through ``workers.engine`` in a process
pool, resumable, and ``lab`` on the dashboard's Celery workers; ``rundir`` and
``data`` read the runs back; ``stats`` (IQM, stratified bootstrap, rank tests), ``aggregate``,
``failures`` and ``figures`` compute what ``report`` writes to docs/results/ and the README.
``python -m study --help`` lists the commands.
"""
