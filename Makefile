# The two commands of the README, and what they are made of.
STATE_DIR ?= tokens/dev
SWIFT ?= swift
# Azure's SDKs for the interop suite, and schemathesis for the hostile-input suite, live in virtual
# environments of their own.
AZURE_VENV ?= .venv-azure
FUZZ_VENV ?= .venv-fuzz

.PHONY: run test prerequisites build release clean-token

## Set everything up and run hsmd in the foreground on tokens/dev (socket: tokens/dev/hsmd.sock).
run: prerequisites build
	$(SWIFT) run --skip-build hsmd --state-dir $(STATE_DIR)

## Run every test against the real SoftHSM2 token, socket and clients. The long modes (200 kills,
## 60 s of load, long fuzzing) are in docs/RELIABILITY.md.
test: prerequisites build $(AZURE_VENV)/.installed $(FUZZ_VENV)/.installed
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	python3 -m pytest Tests/e2e -q
	python3 -m pytest Tests/reliability -q
	$(FUZZ_VENV)/bin/python -m pytest Tests/fuzz -q
	$(AZURE_VENV)/bin/python -m pytest Tests/azure -q

$(AZURE_VENV)/.installed: Tests/azure/requirements.txt
	python3 -m venv $(AZURE_VENV)
	$(AZURE_VENV)/bin/pip install --quiet -r Tests/azure/requirements.txt
	touch $@

$(FUZZ_VENV)/.installed: Tests/fuzz/requirements.txt
	python3 -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/pip install --quiet -r Tests/fuzz/requirements.txt
	touch $@

prerequisites:
	@scripts/install-prerequisites

build:
	$(SWIFT) build

release:
	$(SWIFT) build -c release

## Forget the development token (its keys are gone for good).
clean-token:
	rm -rf $(STATE_DIR)
