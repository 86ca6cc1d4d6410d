"""The results store and what is made from it: tables, comparisons, exports, plots, reports."""

from edgeprune.results.rows import ModelInfo
from edgeprune.results.store import ResultsStore, default_db_path
from edgeprune.results.tables import compare_rows, summary_rows

__all__ = ["ModelInfo", "ResultsStore", "compare_rows", "default_db_path", "summary_rows"]
