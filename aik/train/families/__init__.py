"""Model families `aik train --model` chooses from: XGBoost, and four PyTorch families on the CPU.

`xgboost` is the kit's booster (`aik.train.model`). The others (`logreg`, `fm`, `mlp`, `wide-deep`) live
in `aik.train.families.neural`, which imports PyTorch (the `neural` extra): every feature, the index
codes and hour, weekday and device type alike, is a categorical field with one embedding table, and
the encoding from the pipeline's float rows to table ids is part of the model itself, so whatever
scores the model (the workflow, a backtest, ONNX Runtime) feeds it the same rows as the booster.
`config` holds their hyperparameters and needs no PyTorch. `spark_ml` trains the Spark ML baselines.
"""

from __future__ import annotations

#: Every family, the booster first (the default).
FAMILIES: tuple[str, ...] = ("xgboost", "logreg", "fm", "mlp", "wide-deep")

#: The families trained with PyTorch.
NEURAL_FAMILIES: tuple[str, ...] = ("logreg", "fm", "mlp", "wide-deep")

#: Baselines trained by Spark ML on the splits' parquet (`aik.train.families.spark_ml`): backtest
#: candidates, not `aik train --model` choices. A spark-logreg model is a `logreg` model.
SPARK_FAMILIES: tuple[str, ...] = ("spark-logreg", "spark-mlp")
