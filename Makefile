# The two commands of the README, and the pieces they are made of.
#   make demo   set everything up, then roll back a bad deploy of the reference stack
#   make test   set everything up, then run every test and linter (non-zero on any failure)
SHELL := /bin/bash
VENV := .venv/bin
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup demo demo-down test unit integration faults molecule lint sanity docs build stack-images clean

setup:
	@scripts/setup.sh

demo: setup
	@scripts/demo.sh

demo-down:
	@scripts/demo.sh down

test: setup
	@scripts/test.sh

# Single stages, for a quick loop while developing (each assumes `make setup` has run).
unit:
	@scripts/test.sh unit
integration:
	@scripts/test.sh integration
faults:
	@scripts/test.sh faults
molecule:
	@scripts/test.sh molecule
lint:
	@scripts/test.sh lint
sanity:
	@scripts/test.sh sanity
docs:
	@scripts/test.sh docs
build:
	@scripts/test.sh build

stack-images:
	@stack/stackctl build

clean:
	rm -rf .cache/sanity tests/output collections ansible_collections taylordash-rollback-*.tar.gz
