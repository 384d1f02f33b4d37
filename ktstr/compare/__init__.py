"""``ktstr compare``: is B better or worse than A, and is the difference real?

Needs the ``compare`` extra (scipy, matplotlib): ``pip install 'ktstr[compare]'``.
"""
