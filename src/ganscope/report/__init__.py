"""Reports: one self-contained HTML page per run (rewritten at the end of every
training) and a page comparing several runs."""

from ganscope.report.compare import COMPARE, write_comparison
from ganscope.report.single import REPORT, write_report

__all__ = ["COMPARE", "REPORT", "write_comparison", "write_report"]
