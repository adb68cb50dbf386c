#!/bin/sh
# Issue 13, item 5: the video latent grid (--arch grid-video) on carphone (QCIF, 176x144), next to
# x264 and x265 (medium, CRF sweep), through nfc eval (resumable; run alone: 2 cores).
#   FRAMES  frame range (default 0:30)        PRESET  grid-video preset (default: default)
#   RATES   bpp targets, /-separated           OUT     output folder
set -e
CLIP=${CLIP:-../shared/data/video/carphone_pristine.mp4}
FRAMES=${FRAMES:-0:30}
PRESET=${PRESET:-default}
RATES=${RATES:-0.1/0.2/0.4/0.8}
OUT=${OUT:-benchmarks/results/grid/video-carphone}
SETTINGS=$(echo "$RATES" | tr '/' '\n' | sed "s/^/preset=$PRESET,bpp=/" | paste -sd/ -)
nfc eval "$CLIP" --frames "$FRAMES" -c x264 -c x265 -c nfc-grid-video -s "nfc-grid-video:$SETTINGS" -o "$OUT" -q
