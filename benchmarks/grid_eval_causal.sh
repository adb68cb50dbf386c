#!/bin/sh
# Issue 13, format 2.5: the latent grid with the causal context model (default CPU preset) next to
# JPEG, WebP and AVIF through `nfc eval` (resumable: rerun to continue). Run alone on the machine.
set -e
IMAGES=${IMAGES:-"../shared/data/kodak/kodim01.png ../shared/data/kodak/kodim02.png ../shared/data/kodak/kodim03.png ../shared/data/kodak/kodim04.png"}
nfc eval $IMAGES -c nfc-grid -s "nfc-grid:bpp=0.25/bpp=0.5/bpp=1.0/bpp=1.5" -c jpeg -c webp -c avif \
    -o benchmarks/results/grid/kodak-causal -q
nfc eval ../shared/data/images/coffee.png -c nfc-grid -s "nfc-grid:bpp=0.25/bpp=0.5/bpp=1.0" -c jpeg -c webp -c avif \
    -o benchmarks/results/grid/unseen-causal -q
