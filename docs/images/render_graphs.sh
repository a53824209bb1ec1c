#!/usr/bin/env bash
# Renders the README's network pictures: `archc graph` writes the SVG, Debian's headless
# Chromium turns it into a PNG at the SVG's own size. Run from the repository root
# after `cargo build --features cuda`.
set -euo pipefail
archc=${ARCHC:-target/debug/archc}
out=docs/images
render() { # MODEL LEVEL NAME
    local svg
    svg=$(mktemp --suffix .svg)
    "$archc" graph "models/$1.arch" --level "$2" --out "$svg" >/dev/null
    local size
    size=$(sed -n 's/^<svg [^>]*width="\([0-9]*\)" height="\([0-9]*\)".*/\1,\2/p' "$svg" | head -1)
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$(mktemp -d)" --hide-scrollbars --force-device-scale-factor=1 \
        --window-size="$size" --screenshot="$out/$3.png" "file://$svg" 2>/dev/null
    echo "$out/$3.png ($size): archc graph models/$1.arch --level $2"
}
render resnet50_cbam block graph_resnet50_cbam_block
render vit_tiny_16 block graph_vit_tiny_16_block
