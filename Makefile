# The two commands of the README.
.PHONY: run test lint package

run:  ## the dashboard with demo data on http://127.0.0.1:8000/admin/
	bash scripts/run.sh

test:  ## the whole test suite, installing and starting what it needs
	bash scripts/test.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

package:  ## build the wheel of django-resilience and try it in a fresh project
	bash scripts/package.sh
