// Starts `archc lsp` for .arch files. Everything the editor shows (diagnostics, hover,
// definitions, completion, formatting, inlay hints) comes from the server.
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("archc");
  const command = config.get("path", "archc");
  const serverOptions = { command, args: ["lsp"], transport: TransportKind.stdio };
  const clientOptions = {
    documentSelector: [{ scheme: "file", language: "arch" }, { scheme: "untitled", language: "arch" }],
    initializationOptions: { inlayHints: config.get("inlayHints", false) },
    synchronize: { configurationSection: "archc" },
  };
  client = new LanguageClient("archc", "archc", serverOptions, clientOptions);
  client.start();
  context.subscriptions.push({ dispose: () => client && client.stop() });
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
