# The two commands of the README, and what they are made of.
STATE_DIR ?= tokens/dev
SWIFT ?= swift
# Azure's SDKs for the interop suite live in their own virtual environment.
AZURE_VENV ?= .venv-azure

.PHONY: run test prerequisites build release clean-token

## Set everything up and run hsmd in the foreground on tokens/dev (socket: tokens/dev/hsmd.sock).
run: prerequisites build
	$(SWIFT) run --skip-build hsmd --state-dir $(STATE_DIR)

## Run every test against the real SoftHSM2 token, socket and clients.
test: prerequisites build $(AZURE_VENV)/.installed
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	python3 -m pytest Tests/e2e -q
	$(AZURE_VENV)/bin/python -m pytest Tests/azure -q

$(AZURE_VENV)/.installed: Tests/azure/requirements.txt
	python3 -m venv $(AZURE_VENV)
	$(AZURE_VENV)/bin/pip install --quiet -r Tests/azure/requirements.txt
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
