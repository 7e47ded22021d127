"""The Spark feature job and its parts: log parsing, DataFrame transforms, the session, the job itself.

Importing this package does not import pyspark; the functions do, when called.
"""

from aik.features.job import Outputs, Sources, main, run_features, run_job
from aik.features.transforms import BID_FILTERING, CTR, USE_CASES

__all__ = ["BID_FILTERING", "CTR", "USE_CASES", "Outputs", "Sources", "main", "run_features", "run_job"]
