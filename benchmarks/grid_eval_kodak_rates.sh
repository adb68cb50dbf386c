#!/bin/sh
# Issue 13, twelfth round: Kodak images with the latent grid at the default CPU preset next to JPEG,
# WebP and AVIF through `nfc eval`, one rate at a time (highest first, so that a stopped run has
# measured the rates a change is about), then one pass over all four rates for the BD-rate tables
# (it encodes nothing new: nfc eval is resumable). Run alone on the machine (about 4 minutes per
# grid encode on 2 cores). The twelfth round's record:
#   IMAGES="03 09 05 01" OUT=benchmarks/results/grid/kodak-r12 sh benchmarks/grid_eval_kodak_rates.sh
# NO_FINAL=1 skips that last pass (a record measured over several sessions, rate by rate).
set -e
K=../shared/data/kodak
IMAGES=${IMAGES:?set IMAGES, e.g. \"03 09 05 01\"}
OUT=${OUT:?set OUT to the results folder}
RATES=${RATES:-"1.5 1.0 0.5 0.25"}
FILES=""
for i in $IMAGES; do FILES="$FILES $K/kodim$i.png"; done
for r in $RATES; do
    nfc eval $FILES -c nfc-grid -s "nfc-grid:bpp=$r" -c jpeg -c webp -c avif -o "$OUT" -q
done
[ -n "$NO_FINAL" ] || nfc eval $FILES -c nfc-grid -s "nfc-grid:bpp=0.25/bpp=0.5/bpp=1.0/bpp=1.5" -c jpeg -c webp -c avif -o "$OUT" -q
