"""The paper's method: which modules hold neurons (`neurons`, `hooks`), rankings such as benign
salience (`rankings/`), marking, the regularizers (AR, L2, L1, prune, none) and the purification loop
(`purify`, with its optional steps in `steps`)."""
