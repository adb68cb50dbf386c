#!/bin/sh
# Issue 13, format 2.5 (causal context model, two-gain lambda controller of commit b502fb4): Kodak
# images with the latent grid at the default CPU preset next to JPEG, WebP and AVIF through
# `nfc eval` (resumable: rerun to continue). Run alone on the machine: one grid encode takes about
# 200 s on 2 cores. The Kodak 1-12 record is three runs of this script plus a pooling pass:
#   IMAGES="kodim05..08" OUT=benchmarks/results/grid/kodak-causal-5to8   sh benchmarks/grid_eval_kodak.sh
#   IMAGES="kodim09..12" OUT=benchmarks/results/grid/kodak-causal-9to12  sh benchmarks/grid_eval_kodak.sh
#   (kodim01-04: benchmarks/grid_eval_causal.sh, at 3395ec5, before the controller change)
#   sh benchmarks/grid_pool_kodak.sh      # concatenates the three results.csv and re-runs the BD pass
set -e
K=../shared/data/kodak
IMAGES=${IMAGES:-"$K/kodim05.png $K/kodim06.png $K/kodim07.png $K/kodim08.png"}
OUT=${OUT:-benchmarks/results/grid/kodak-causal-5to8}
nfc eval $IMAGES -c nfc-grid -s "nfc-grid:bpp=0.25/bpp=0.5/bpp=1.0/bpp=1.5" -c jpeg -c webp -c avif \
    -o "$OUT" -q
