//! The language server, driven with protocol messages: in process over an in-memory
//! connection (responses snapshot-tested), and once as the real binary over stdio.

mod support;

use lsp_server::{Connection, Message, Notification, Request, RequestId};
use serde_json::{Value, json};
use std::time::Duration;
use support::Scratch;

struct Client {
    connection: Connection,
    next: i32,
    /// Notifications received while waiting for responses.
    notifications: Vec<Notification>,
    server: Option<std::thread::JoinHandle<()>>,
}

impl Client {
    fn start(options: Value) -> Client {
        let (server, connection) = Connection::memory();
        let handle = std::thread::spawn(move || archc::lsp::serve(&server).expect("the server runs"));
        let mut client = Client { connection, next: 0, notifications: Vec::new(), server: Some(handle) };
        let result = client.request("initialize", json!({"capabilities": {}, "initializationOptions": options}));
        assert!(result["capabilities"]["hoverProvider"].as_bool().unwrap_or(false), "{result}");
        client.notify("initialized", json!({}));
        client
    }

    fn notify(&self, method: &str, params: Value) {
        self.connection.sender.send(Message::Notification(Notification::new(method.into(), params))).unwrap();
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = RequestId::from(self.next);
        self.connection.sender.send(Message::Request(Request::new(id.clone(), method.into(), params))).unwrap();
        loop {
            match self.connection.receiver.recv_timeout(Duration::from_secs(60)).expect("a response") {
                Message::Response(response) if response.id == id => {
                    return response.response_result.unwrap_or_else(|e| panic!("{method}: {e:?}"));
                }
                Message::Notification(n) => self.notifications.push(n),
                _ => {}
            }
        }
    }

    /// The next diagnostics published for `uri`.
    fn diagnostics(&mut self, uri: &str) -> Value {
        if let Some(i) = self
            .notifications
            .iter()
            .position(|n| n.method == "textDocument/publishDiagnostics" && n.params["uri"] == uri)
        {
            return self.notifications.remove(i).params;
        }
        loop {
            match self.connection.receiver.recv_timeout(Duration::from_secs(60)).expect("diagnostics") {
                Message::Notification(n) if n.method == "textDocument/publishDiagnostics" && n.params["uri"] == uri => {
                    return n.params;
                }
                Message::Notification(n) => self.notifications.push(n),
                _ => {}
            }
        }
    }

    fn open(&mut self, uri: &str, text: &str) -> Value {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "arch", "version": 1, "text": text}}),
        );
        self.diagnostics(uri)
    }

    fn shutdown(mut self) {
        self.request("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        self.server.take().unwrap().join().unwrap();
    }
}

fn at(uri: &str, line: u32, character: u32) -> Value {
    json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}})
}

/// The responses with the machine-specific part of URIs replaced, for snapshots.
fn portable(value: &Value, dir: &str) -> Value {
    let text = serde_json::to_string_pretty(value).unwrap().replace(dir, "$DIR");
    let std_dir = std::env::temp_dir().join(format!("archc-std-{}", env!("CARGO_PKG_VERSION")));
    serde_json::from_str(&text.replace(&std_dir.display().to_string(), "$STD")).unwrap()
}

fn snapshot(name: &str, value: &Value) {
    insta::with_settings!({ snapshot_path => "../snapshots/lsp", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(name, serde_json::to_string_pretty(value).unwrap());
    });
}

/// ResNet-50 with CBAM, broken in three independent places.
const BROKEN: &str = "\
# ResNet-50 with CBAM, three mistakes.
network resnet50_cbam(classes: int = 1000) {
    input image(3, 224, 224)

    conv1:   conv(64, kernel: 7, stride: 2, padding: 3, bias: false, in_channels: 1)
    bn1:     batchnorm
             relu
    maxpool: maxpool(kernel: 3, stride: 2, padding: 1)

    layer1:  stage(bottleneck(64), blocks: 3)
    layer2:  stage(bottleneck(128), blocks: 4, stride: 2)
    layer3:  stage(bottleneck(256), blocks: 6, stride: 2)
    layer4:  stage(bottleneck(512), blocks: 3, stride: 2)

    avgpool: global_avgpool
    fc:      linear(classes)

    insert cbam(reduction: 0) at bottleneck.attention as se
}
";

#[test]
fn three_mistakes_are_three_diagnostics_with_archcs_codes_and_help() {
    let dir = Scratch::new("lsp", "diagnostics");
    let uri = format!("file://{}/broken.arch", dir.display());
    let mut client = Client::start(json!({}));
    let published = client.open(&uri, BROKEN);
    let codes: Vec<&str> =
        published["diagnostics"].as_array().unwrap().iter().map(|d| d["code"].as_str().unwrap()).collect();
    // `reduction: 0` divides by zero inside the standard library's CBAM: reported once,
    // at the `insert` that put CBAM there, in source order.
    assert_eq!(codes, ["E0010", "E0011", "E0017"], "{published:#}");
    assert_eq!(published["diagnostics"][2]["range"]["start"]["line"], 17, "{published:#}");
    snapshot("diagnostics_three_mistakes", &portable(&published, &dir.display().to_string()));
    // Hover still works on what did build: the shapes and cost of a stage.
    let hover = client.request("textDocument/hover", at(&uri, 11, 6));
    let value = hover["contents"]["value"].as_str().unwrap_or_default();
    assert!(
        value.starts_with("**`layer3`** · `stage`") && value.contains("image(512, 28, 28) → image(1024, 14, 14)"),
        "{hover}"
    );

    // Fixing them (one change, as an editor sends it) clears the diagnostics after the debounce.
    let fixed = BROKEN
        .replace(", in_channels: 1", "")
        .replace("global_avgpool\n", "global_avgpool\n             flatten\n")
        .replace("reduction: 0", "reduction: 16");
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": fixed}]}),
    );
    let published = client.diagnostics(&uri);
    assert_eq!(published["diagnostics"], json!([]), "{published:#}");
    client.shutdown();
}

#[test]
fn hover_definition_completion_symbols_formatting_and_hints() {
    let dir = Scratch::new("lsp", "features");
    let path = dir.join("net.arch");
    let text = "\
# A small residual network. ü comments are UTF-8; positions are UTF-16.
block pair(c: int) {  # ü
    residual {
        conv1: conv(c, kernel: 3, padding: 1, bias: false)
        bn1:   batchnorm
    }
    relu
}

network net(classes: int = 10) {
    input image(16, 8, 8)
    let head = linear(classes)
    body: repeat(pair(16), times: 2)
          global_avgpool
          flatten
          head
}
";
    std::fs::write(&path, text).unwrap();
    let uri = format!("file://{}", path.display());
    let mut client = Client::start(json!({"inlayHints": true}));
    let published = client.open(&uri, text);
    assert_eq!(published["diagnostics"], json!([]), "{published:#}");
    let d = dir.display().to_string();

    // A layer inside a block used twice: both instances, their shapes and costs.
    let hover = client.request("textDocument/hover", at(&uri, 3, 12));
    snapshot("hover_layer_in_block", &portable(&hover, &d));
    // A layer of the network; the UTF-16 column after a non-ASCII comment line is right.
    let hover = client.request("textDocument/hover", at(&uri, 12, 8));
    snapshot("hover_network_layer", &portable(&hover, &d));
    // A block name: its signature and doc comment; a network name: its totals.
    let hover = client.request("textDocument/hover", at(&uri, 12, 20));
    snapshot("hover_block_name", &portable(&hover, &d));
    let hover = client.request("textDocument/hover", at(&uri, 9, 9));
    snapshot("hover_network_name", &portable(&hover, &d));

    // Definitions: a block in this file, a `let`, a standard-library block.
    let definition = client.request("textDocument/definition", at(&uri, 12, 19));
    assert_eq!(definition["range"]["start"], json!({"line": 1, "character": 6}), "{definition}");
    let definition = client.request("textDocument/definition", at(&uri, 15, 11));
    assert_eq!(definition["range"]["start"], json!({"line": 11, "character": 8}), "{definition}");
    let references = client.request("textDocument/references", json!({"textDocument": {"uri": uri}, "position": {"line": 1, "character": 7}, "context": {"includeDeclaration": true}}));
    assert_eq!(references.as_array().unwrap().len(), 2, "{references}");

    // Completion of argument names inside a call, and of layer and block names.
    let completion = client.request("textDocument/completion", at(&uri, 3, 21));
    let labels: Vec<&str> = completion.as_array().unwrap().iter().map(|i| i["label"].as_str().unwrap()).collect();
    assert_eq!(&labels[..8], ["out", "kernel", "stride", "padding", "dilation", "groups", "bias", "in_channels"]);
    assert!(labels.contains(&"bottleneck") && labels.contains(&"pair") && labels.contains(&"relu"), "{labels:?}");

    let symbols = client.request("textDocument/documentSymbol", json!({"textDocument": {"uri": uri}}));
    snapshot("document_symbols", &portable(&symbols, &d));
    let hints = client.request("textDocument/inlayHint", json!({"textDocument": {"uri": uri}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 20, "character": 0}}}));
    snapshot("inlay_hints", &portable(&hints, &d));

    // Formatting a messy version: one edit with `archc fmt`'s output.
    let messy = text.replace("    body: repeat(pair(16), times: 2)", "    body:repeat( pair(16),times:2 )");
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": messy}]}),
    );
    let edits = client.request(
        "textDocument/formatting",
        json!({"textDocument": {"uri": uri}, "options": {"tabSize": 4, "insertSpaces": true}}),
    );
    assert_eq!(edits[0]["newText"], json!(archc::fmt::format(0, &messy).unwrap()));
    assert_eq!(edits[0]["newText"], json!(text));
    client.shutdown();
}

#[test]
fn definition_reaches_into_the_standard_library_and_insertion_points() {
    let dir = Scratch::new("lsp", "std");
    let uri = format!("file://{}/cbam.arch", dir.display());
    let text = std::fs::read_to_string("models/resnet50_cbam.arch").unwrap();
    let mut client = Client::start(json!({}));
    client.open(&uri, &text);
    let line = text.lines().position(|l| l.contains("insert cbam")).unwrap() as u32;
    let column = text.lines().nth(line as usize).unwrap().find("attention").unwrap() as u32;
    let definition = client.request("textDocument/definition", at(&uri, line, column + 2));
    let target = definition["uri"].as_str().unwrap().to_string();
    assert!(target.ends_with("/resnet.arch"), "{definition}");
    let std_text = std::fs::read_to_string(target.trim_start_matches("file://")).unwrap();
    let start = definition["range"]["start"]["line"].as_u64().unwrap() as usize;
    assert!(std_text.lines().nth(start).unwrap().contains("point attention"), "{definition}");
    // After `at bottleneck.`, the points of bottleneck are offered.
    let completion = client.request("textDocument/completion", at(&uri, line, column));
    let labels: Vec<&str> = completion.as_array().unwrap().iter().map(|i| i["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["attention"]);

    // Half way through typing a line the file does not parse: the syntax error is at the
    // unfinished line, and completion and hover answer from the last version that parsed.
    // The line is typed above the stages (before `input`: a keyword cannot continue it),
    // so they are one line lower than last parsed.
    let typed = text.lines().position(|l| l.contains("input image")).unwrap() as u32;
    let typing = text.replace("    input image", "    insert se() at bottleneck.\n    input image");
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": typing}]}),
    );
    let published = client.diagnostics(&uri);
    assert_eq!(published["diagnostics"][0]["code"], "E0001", "{published:#}");
    assert_eq!(published["diagnostics"][0]["range"]["start"]["line"], typed, "{published:#}");
    let completion = client.request("textDocument/completion", at(&uri, typed, 30));
    let labels: Vec<&str> = completion.as_array().unwrap().iter().map(|i| i["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["attention"]);
    let layer3 = typing.lines().position(|l| l.contains("layer3:")).unwrap() as u32;
    let hover = client.request("textDocument/hover", at(&uri, layer3, 6));
    assert!(hover["contents"]["value"].as_str().unwrap_or_default().starts_with("**`layer3`**"), "{hover}");
    assert_eq!(hover["range"]["start"]["line"], layer3, "{hover}");
    // On the line being typed there is nothing to say yet.
    assert_eq!(client.request("textDocument/hover", at(&uri, typed, 6)), Value::Null);
    // Symbols of the last parsed version, at today's lines.
    let symbols = client.request("textDocument/documentSymbol", json!({"textDocument": {"uri": uri}}));
    let layer3_symbol = symbols[0]["children"].as_array().unwrap().iter().find(|s| s["name"] == "layer3").unwrap();
    assert_eq!(layer3_symbol["range"]["start"]["line"], layer3, "{symbols}");
    client.shutdown();
}

/// The real binary, over stdio, as an editor starts it.
#[test]
fn the_binary_serves_over_stdio() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_archc"))
        .arg("lsp")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut send = |value: Value| {
        let body = value.to_string();
        write!(stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        stdin.flush().unwrap();
    };
    let mut receive = || -> Value {
        let mut length = 0;
        loop {
            let mut header = String::new();
            stdout.read_line(&mut header).unwrap();
            if header == "\r\n" {
                break;
            }
            if let Some(n) = header.strip_prefix("Content-Length: ") {
                length = n.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        stdout.read_exact(&mut body).unwrap();
        serde_json::from_slice(&body).unwrap()
    };
    send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}));
    assert!(receive()["result"]["capabilities"]["documentFormattingProvider"].as_bool().unwrap());
    send(json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}));
    let text = "network n {\n    input image(3, 8, 8)\n    linear(10)\n}\n";
    send(
        json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {"uri": "untitled:n.arch", "languageId": "arch", "version": 1, "text": text}}}),
    );
    let published = receive();
    assert_eq!(published["method"], "textDocument/publishDiagnostics");
    assert_eq!(published["params"]["diagnostics"][0]["code"], "E0011", "{published}");
    assert_eq!(published["params"]["diagnostics"][0]["range"]["start"], json!({"line": 2, "character": 4}));
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}));
    assert_eq!(receive()["id"], 2);
    send(json!({"jsonrpc": "2.0", "method": "exit"}));
    assert!(child.wait().unwrap().success());
}

/// A client's mistakes (malformed parameters, positions past the end, a character of
/// several bytes before the cursor) are answered, never fatal.
#[test]
fn malformed_requests_are_answered_and_the_server_lives_on() {
    let dir = Scratch::new("lsp", "malformed");
    let uri = format!("file://{}/lenet5.arch", dir.display());
    let text = std::fs::read_to_string("models/lenet5.arch").unwrap();
    let mut client = Client::start(json!({}));
    client.open(&uri, &text);
    // Hover just after `×` (two bytes in UTF-8) on the first line, and far past the end.
    let first = text.lines().next().unwrap();
    let after = first[..first.find('×').unwrap()].encode_utf16().count() as u32 + 1;
    for (line, character) in [(0, after), (0, after + 1), (0, 999), (999, 0)] {
        let _ = client.request("textDocument/hover", at(&uri, line, character));
        let _ = client.request("textDocument/definition", at(&uri, line, character));
    }
    // Parameters of the wrong shape: an InvalidParams error, not a dead server.
    client.next += 1;
    let id = RequestId::from(client.next);
    let bad = Request::new(id.clone(), "textDocument/hover".into(), json!({"textDocument": {"uri": "not a uri"}}));
    client.connection.sender.send(Message::Request(bad)).unwrap();
    loop {
        match client.connection.receiver.recv_timeout(Duration::from_secs(60)).unwrap() {
            Message::Response(response) if response.id == id => {
                assert_eq!(response.response_result.unwrap_err().code, lsp_server::ErrorCode::InvalidParams as i32);
                break;
            }
            _ => {}
        }
    }
    client.notify("textDocument/didChange", json!({"textDocument": {"uri": uri}}));
    let hover = client.request("textDocument/hover", at(&uri, 5, 6));
    assert!(hover.is_object() || hover.is_null());
    client.shutdown();
}

/// A family written with a table and a loop: a layer inside the loop has one hover line
/// per pass, the computed labels are symbols, a loop variable's definition is its `for`.
#[test]
fn loops_hover_every_pass_and_their_labels_are_symbols() {
    let dir = Scratch::new("lsp", "loops");
    let path = dir.join("stages.arch");
    let text = "\
network stages(widths: list = [8, 16]) {
    input image(3, 8, 8)
    for i, planes in widths {
        stage{i + 1}: conv(planes, kernel: 3, padding: 1)
        relu
    }
    global_avgpool
    flatten
    linear(10)
}
";
    std::fs::write(&path, text).unwrap();
    let uri = format!("file://{}", path.display());
    let mut client = Client::start(json!({}));
    let published = client.open(&uri, text);
    assert_eq!(published["diagnostics"], json!([]), "{published:#}");
    let hover = client.request("textDocument/hover", at(&uri, 4, 9));
    let shown = hover["contents"]["value"].as_str().unwrap_or_default().to_string();
    for (path, shape) in [("`1`", "image(8, 8, 8)"), ("`3`", "image(16, 8, 8)")] {
        assert!(shown.contains(path) && shown.contains(shape), "relu at pass {path}: {shown}");
    }
    let hover = client.request("textDocument/hover", at(&uri, 3, 24));
    let shown = hover["contents"]["value"].as_str().unwrap_or_default().to_string();
    assert!(shown.contains("stage1") && shown.contains("stage2"), "{shown}");
    let symbols = client.request("textDocument/documentSymbol", json!({"textDocument": {"uri": uri}}));
    let names = serde_json::to_string(&symbols).unwrap();
    assert!(names.contains("\"stage{i + 1}\""), "{names}");
    let definition = client.request("textDocument/definition", at(&uri, 3, 28));
    assert_eq!(definition["range"]["start"], json!({"line": 2, "character": 11}), "{definition}");
    client.shutdown();
}
