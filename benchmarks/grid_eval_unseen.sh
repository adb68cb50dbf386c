#!/bin/sh
# Issue 13's unseen-image check with the current encoder: --arch grid --bpp 0.25 / 0.5 / 1.0 (default
# preset) on an image no test uses, next to JPEG, WebP and AVIF (resumable; run alone).
set -e
OUT=${OUT:-benchmarks/results/grid/unseen-r3}
nfc eval ../shared/data/images/coffee.png -c nfc-grid -s "nfc-grid:bpp=0.25/bpp=0.5/bpp=1.0" -c jpeg -c webp -c avif \
    -o "$OUT" -q
