"""Sweeps: the verifier sweep (scheduler x kernel x topology, every BPF program's
verifier statistics) and the local parallel runner shared with the gauntlet.

- ``cells``: pure cell expansion and CI matrices;
- ``kernels``: ``--kernel`` specs -> the kernels they resolve to;
- ``runner``: ``run_cells`` (CPU budget, ERROR cells, resume, results as they finish);
- ``guestout``: pure parsers of what the guest printed (veristat CSV, program info,
  verifier logs with repeated blocks collapsed);
- ``verifier``: one verifier cell in a VM, judged;
- ``report``: tables, the pass grid, failures and ``diff``.
"""
