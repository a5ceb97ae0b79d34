#!/usr/bin/env bash
# Placeholder: the real demo replaces this file.
set -euo pipefail
echo "demo placeholder"
