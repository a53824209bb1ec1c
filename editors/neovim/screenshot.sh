#!/usr/bin/env bash
# Takes the README's picture of archc in a real editor: Neovim (its built-in LSP client,
# editors/neovim/archc.lua) in an xterm under Xvfb, on resnet50_cbam.arch broken in three
# places, with the cursor on `layer3` and its hover open. Needs Debian's neovim, xvfb,
# xterm, xdotool, imagemagick and fonts-dejavu-core; not part of CI.
#     bash editors/neovim/screenshot.sh docs/images/editor.png
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-docs/images/editor.png}
archc=$PWD/target/debug/archc
work=$(mktemp -d)
# The LSP test's broken file: in_channels on conv1, no flatten before fc, CBAM's reduction 0.
sed -e 's/conv1:   conv(64, kernel: 7, stride: 2, padding: 3, bias: false)/conv1:   conv(64, kernel: 7, stride: 2, padding: 3, bias: false, in_channels: 1)/' \
    -e '/^             flatten$/d' \
    -e 's/insert cbam() at/insert cbam(reduction: 0) at/' models/resnet50_cbam.arch > "$work/resnet50_cbam.arch"
cat > "$work/init.lua" <<LUA
vim.g.archc_path = "$archc"
vim.opt.termguicolors = true
vim.opt.number = true
vim.opt.signcolumn = "yes"
vim.cmd("syntax on")
vim.diagnostic.config({ virtual_text = { prefix = "●" }, float = { border = "rounded" } })
vim.cmd("highlight NormalFloat guibg=#313244 guifg=#cdd6f4")
vim.cmd("highlight FloatBorder guibg=#313244 guifg=#89b4fa")
vim.lsp.handlers["textDocument/hover"] = vim.lsp.with(vim.lsp.handlers.hover, { border = "rounded" })
dofile("$PWD/editors/neovim/archc.lua")
LUA
export DISPLAY=:77
Xvfb :77 -screen 0 1500x440x24 >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null; rm -rf "$work"' EXIT
sleep 1
xterm -geometry 178x24+0+0 -fa "DejaVu Sans Mono" -fs 10 -bg "#1e1e2e" -fg "#cdd6f4" -xrm "XTerm*allowSendEvents: true" \
    -e env TERM=xterm-256color nvim -u "$work/init.lua" "$work/resnet50_cbam.arch" &
sleep 4
window=$(xdotool search --class xterm | head -1)
# To `layer3`'s line, on `stage`, and hover (K).
xdotool type --window "$window" --delay 50 ":14"
xdotool key --window "$window" Return
sleep 0.3
xdotool type --window "$window" --delay 50 "wwK"
sleep 2
import -window root -crop 1440x420+0+0 "$out"
echo "wrote $out"
