.PHONY: install test test-all lint bench

install:
	python -m pip install torch==2.13.0
	python -m pip install -e ".[test]"

test:
	python -m pytest -q

# Includes the slow reproduction runs on the real datasets in ../shared/data.
test-all:
	DLRUN_DATA_PATH=../shared/data python -m pytest -q -m ""

lint:
	ruff check dlrun tests bench && ruff format --check dlrun tests bench && mypy dlrun tests

bench:
	python bench/bench_epoch.py
	python bench/bench_folds.py
	python bench/bench_sweep.py
	python bench/bench_process.py
	python bench/repeatability.py
	python bench/bench_recurrent.py
