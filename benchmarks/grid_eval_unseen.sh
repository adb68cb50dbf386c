#!/bin/sh
# Issue 13's unseen-image check with the current encoder: --arch grid --bpp 0.25 / 0.5 / 1.0 (default
# preset) on an image no test uses, next to JPEG, WebP and AVIF (resumable; run alone).
# WebP also at qualities 0 and 5 (since the seventh round): its quality 10 is above 0.25 bpp on this
# image, so without them the 0.25 bpp point had no WebP to compare with.
set -e
OUT=${OUT:-benchmarks/results/grid/unseen-r3}
nfc eval ../shared/data/images/coffee.png -c nfc-grid -s "nfc-grid:bpp=0.25/bpp=0.5/bpp=1.0" -c jpeg -c webp -s "webp:0/5/10/30/50/70/90" -c avif \
    -o "$OUT" -q
