#!/usr/bin/env bash
# Copy the prompts (the single source: prompts/) into deploy/prompts/, which the
# kustomize configMapGenerator reads (kustomize refuses files outside deploy/, and
# symlinks pointing there). tests/integration/test_deploy.py fails while the copy
# differs. A new prompt file also needs a line in deploy/kustomization.yaml
# (configMapGenerator) and an item in deploy/deployment.yaml (the prompts volume).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf deploy/prompts
mkdir -p deploy/prompts
cp -R prompts/. deploy/prompts/
find deploy/prompts -type f -name '*.md' | sort
