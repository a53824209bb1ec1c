-- archc's language server in Neovim (0.7 or later, built-in LSP client; nothing to
-- install but archc). Put this file on your runtimepath and `require("archc")`, or
-- source it from init.lua. `vim.g.archc_path` overrides the binary.
vim.api.nvim_create_autocmd({ "BufRead", "BufNewFile" }, {
  pattern = "*.arch",
  callback = function(args)
    vim.bo[args.buf].filetype = "arch"
    vim.bo[args.buf].commentstring = "# %s"
    local client = vim.lsp.start_client({
      name = "archc",
      cmd = { vim.g.archc_path or "archc", "lsp" },
      root_dir = vim.fn.fnamemodify(args.file, ":p:h"),
    })
    if client then
      vim.lsp.buf_attach_client(args.buf, client)
    end
    local opts = { buffer = args.buf }
    vim.keymap.set("n", "K", vim.lsp.buf.hover, opts)
    vim.keymap.set("n", "gd", vim.lsp.buf.definition, opts)
    vim.keymap.set("n", "gr", vim.lsp.buf.references, opts)
    vim.keymap.set("n", "<leader>f", function() vim.lsp.buf.formatting_sync() end, opts)
  end,
})
