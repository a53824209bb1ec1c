//! Diagnostics as data: a code, a severity, the facts (message, labelled spans, notes,
//! a help line with the fix). The compiler builds these; only `render_*` turns them
//! into text, through codespan-reporting for people or JSON for tools.

use crate::source::{Sources, Span};
use codespan_reporting::diagnostic::{Diagnostic as Report, Label as ReportLabel};
use codespan_reporting::term::{self, termcolor::WriteColor};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// Every diagnostic archc can give. The code is stable (users silence lints and search
/// for explanations by it); `archc explain CODE` prints `explanation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    Syntax,
    UnknownName,
    UnknownArgument,
    UnknownPoint,
    WrongType,
    MissingArgument,
    DuplicateArgument,
    RecursiveBlock,
    ResidualMismatch,
    ChannelMismatch,
    NeedsFlatten,
    KernelTooLarge,
    EmptyFeatureMap,
    HeadsDontDivide,
    PatchDontDivide,
    Overflow,
    DivisionByZero,
    DuplicateLabel,
    Import,
    InvalidValue,
    MissingInput,
    WrongInputKind,
    GateMismatch,
    BranchMismatch,
    TooLarge,
    StageNeedsStride,
    Misplaced,
    NotAList,
    IndexOutOfRange,
    AssertFailed,
    BiasBeforeNorm,
    UnevenStride,
    TinyInputStem,
    DropoutOne,
    UnusedInsert,
}

pub struct CodeInfo {
    pub code: Code,
    pub id: &'static str,
    /// Lint name accepted by `allow(...)`, for warnings.
    pub lint: Option<&'static str>,
    pub summary: &'static str,
    pub explanation: &'static str,
}

macro_rules! codes {
    ($( $code:ident $id:literal $lint:expr, $summary:literal, $explanation:literal; )*) => {
        pub const CODES: &[CodeInfo] = &[
            $( CodeInfo { code: Code::$code, id: $id, lint: $lint, summary: $summary, explanation: $explanation }, )*
        ];
    };
}

codes! {
    Syntax "E0001" None, "syntax error",
        "The file does not follow the .arch grammar. The message says what was expected at the marked place. Layers are written one per line as `label: op(args)`; blocks as `block name(param: type = default) { ... }`.";
    UnknownName "E0002" None, "unknown layer, block or name",
        "A layer, block, function or parameter name that is not defined anywhere visible: the file itself, its imports, or the standard library. Check the spelling (archc suggests close names) or add the `import`.";
    UnknownArgument "E0003" None, "unknown argument",
        "An argument name the op or block does not take, or more positional arguments than it has parameters. `archc explain` lists no signatures; the message lists the parameters that exist.";
    UnknownPoint "E0004" None, "unknown insertion point",
        "`insert M at block.point` names a block that declares no such `point`. Points are declared inside blocks with `point NAME`.";
    WrongType "E0005" None, "wrong argument type",
        "An argument's value has the wrong type: for example a float where an integer is needed, or a number where a module is expected. Integers are accepted where floats are expected, not the other way round.";
    MissingArgument "E0006" None, "missing argument",
        "A required argument (one without a default) was not given.";
    DuplicateArgument "E0007" None, "duplicate argument",
        "The same argument was given twice, by name or once by position and once by name.";
    RecursiveBlock "E0008" None, "recursive block",
        "A block uses itself, directly or through other blocks. Networks are finite; use `repeat` or `stage` to make copies.";
    ResidualMismatch "E0009" None, "residual shapes differ",
        "A `residual` adds its body's output to its input. With an identity shortcut both must have the same shape. Give the residual a projection shortcut (`residual(shortcut: downsample)`), or keep the channels and stride unchanged in the body.";
    ChannelMismatch "E0010" None, "channel mismatch",
        "A layer receives a different number of channels (or features) than it was declared for with `in:`, or a shared module is reused on an input of another width.";
    NeedsFlatten "E0011" None, "layer applied to the wrong kind of value",
        "A layer expects one kind of value (image, tokens or vector) and gets another: typically `linear` right after a convolution or pooling, which needs `flatten` (or `global_avgpool` then `flatten`) first.";
    KernelTooLarge "E0012" None, "kernel larger than the input",
        "A convolution or pooling kernel (with dilation) is larger than its padded input, so it has no valid position.";
    EmptyFeatureMap "E0013" None, "feature map shrinks to zero",
        "After this layer a spatial dimension would be zero or negative. Reduce the strides or pooling, or use a larger `--input`.";
    HeadsDontDivide "E0014" None, "heads do not divide the width",
        "Multi-head attention splits the embedding width evenly across heads: width % heads must be 0.";
    PatchDontDivide "E0015" None, "patch size does not divide the image",
        "`patchify` cuts the image into whole patches: height and width must be multiples of the patch size.";
    Overflow "E0016" None, "integer overflow",
        "An integer in an expression or a shape computation does not fit in 64 bits.";
    DivisionByZero "E0017" None, "division by zero",
        "An expression divides (or takes the remainder) by zero.";
    DuplicateLabel "E0018" None, "duplicate name",
        "Two layers in one sequence, two parameters of one block, or two definitions share a name. Layer names become weight names, so they must be unique. A label computed in a loop (`layer{i + 1}:`) must give a different name on every pass: build it from the loop's index.";
    Import "E0019" None, "import failed",
        "An `import` names a file that cannot be read. Paths are relative to the importing file; files may import each other (each is read once).";
    InvalidValue "E0020" None, "invalid value",
        "An argument is out of range: a zero or negative size, a stride of 0, a probability outside [0, 1], an unknown choice.";
    MissingInput "E0021" None, "no input shape",
        "A network needs `input image(C, H, W)` (or `tokens(N, D)`, `vector(D)`), or `--input` on the command line.";
    WrongInputKind "E0022" None, "wrong input description",
        "`input` takes `image(C, H, W)`, `tokens(N, D)` or `vector(D)` with positive sizes.";
    GateMismatch "E0023" None, "gate shape does not fit",
        "`scale { ... }` multiplies its input by what the body computes. The body must give the same shape, a per-channel gate (image(C, 1, 1) or vector(C)) or a spatial gate (image(1, H, W)).";
    BranchMismatch "E0024" None, "parallel branches disagree",
        "`parallel(merge: sum)` and `merge: mul` need every branch to give the same shape; `merge: concat` needs the same shape except channels (or the last dimension).";
    TooLarge "E0025" None, "too large or too deep",
        "The source nests too deeply, or the network elaborates into more layers than archc will build. Check `repeat` and `stage` counts.";
    StageNeedsStride "E0026" None, "stage block has no stride",
        "`stage(block, blocks: n, stride: s)` passes `stride` to the first copy, so the block must declare a `stride: int` parameter, and the stride is given to the stage, not the block.";
    Misplaced "E0027" None, "statement in the wrong place",
        "`input` and `insert` belong at the top of a `network` (not inside `for` or `if`); `point` belongs in a `block`; a body `{ ... }` only follows `residual`, `scale`, `parallel` and `repeat`.";
    NotAList "E0028" None, "not a list",
        "`for v in X`, `X[i]` and `len(X)` need a list: `[64, 128, 256]`, a parameter declared `list`, or `range(n)` (the integers 0 to n-1). A number where a list belongs is usually a count: write `range(n)`.";
    IndexOutOfRange "E0029" None, "index out of range",
        "`cfg[i]` needs 0 <= i < len(cfg); negative indexes count from the end (`cfg[-1]` is the last item), as in Python. An index computed in a loop usually runs one too far: loop over `range(len(cfg))`, or over the list itself.";
    AssertFailed "E0030" None, "assertion failed",
        "An `assert CONDITION, \"message\"` in the model was false for the values given. The message is the model author's; the note lists the values the condition used (a `--set` value among them, often).";
    BiasBeforeNorm "W0001" Some("bias_before_norm"), "bias before batch norm",
        "A convolution with `bias: true` feeds batch norm, which subtracts the mean and so cancels the bias: wasted parameters. Write `bias: false`. Silence with `allow(bias_before_norm)`.";
    UnevenStride "W0002" Some("uneven_stride"), "stride drops rows",
        "A strided convolution or pooling does not tile its padded input exactly, so the last rows or columns are silently ignored. Silence with `allow(uneven_stride)`.";
    TinyInputStem "W0003" Some("tiny_input_stem"), "ImageNet stem on a small input",
        "A 7x7 stride-2 stem followed by stride-2 pooling divides the resolution by 4 before the first block; on a 32x32 input that leaves 8x8 and the last stage almost nothing. CIFAR ResNets use a 3x3 stride-1 stem without max pooling. Silence with `allow(tiny_input_stem)`.";
    DropoutOne "W0004" Some("dropout_one"), "dropout drops everything",
        "Dropout with p = 1 zeroes every activation during training. Silence with `allow(dropout_one)`.";
    UnusedInsert "W0005" Some("unused_insert"), "insert matches nothing",
        "An `insert` statement found no block of that kind (in the stages it names), so it changed nothing. Silence with `allow(unused_insert)`.";
}

impl Code {
    pub fn info(self) -> &'static CodeInfo {
        CODES.iter().find(|c| c.code == self).expect("every code has an entry")
    }

    pub fn id(self) -> &'static str {
        self.info().id
    }

    pub fn severity(self) -> Severity {
        if self.id().starts_with('W') { Severity::Warning } else { Severity::Error }
    }

    /// Finds a code by its id (`W0001`) or lint name (`bias_before_norm`).
    pub fn lookup(text: &str) -> Option<Code> {
        CODES.iter().find(|c| c.id.eq_ignore_ascii_case(text) || c.lint == Some(text)).map(|c| c.code)
    }
}

#[derive(Clone, Debug)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub code: Code,
    pub message: String,
    pub primary: Label,
    pub secondary: Vec<Label>,
    pub notes: Vec<String>,
    pub help: Option<String>,
    /// The block instance (`layer2.0`) the mistake was found in, when it sits in a
    /// block's definition: one mistake copied by a stage is reported once, naming the
    /// other instances. Not rendered itself.
    pub instance: Option<String>,
}

impl Diagnostic {
    pub fn new(code: Code, message: impl Into<String>, span: Span, label: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            primary: Label { span, message: label.into() },
            secondary: Vec::new(),
            notes: Vec::new(),
            help: None,
            instance: None,
        }
    }

    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.secondary.push(Label { span, message: message.into() });
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn severity(&self) -> Severity {
        self.code.severity()
    }

    pub fn is_error(&self) -> bool {
        self.severity() == Severity::Error
    }

    fn to_report(&self) -> Report<usize> {
        let report = match self.severity() {
            Severity::Error => Report::error(),
            Severity::Warning => Report::warning(),
        };
        let mut labels = vec![
            ReportLabel::primary(self.primary.span.file, self.primary.span.start..self.primary.span.end)
                .with_message(&self.primary.message),
        ];
        labels.extend(
            self.secondary
                .iter()
                .map(|l| ReportLabel::secondary(l.span.file, l.span.start..l.span.end).with_message(&l.message)),
        );
        let mut notes = self.notes.clone();
        if let Some(help) = &self.help {
            notes.push(format!("help: {help}"));
        }
        report.with_code(self.code.id()).with_message(&self.message).with_labels(labels).with_notes(notes)
    }
}

/// Renders diagnostics the way rustc does, to a terminal or any writer.
pub fn render_human(sources: &Sources, diagnostics: &[Diagnostic], out: &mut dyn WriteColor) {
    let config = term::Config::default();
    for diagnostic in diagnostics {
        // Rendering only fails on a span outside its file, which would be our bug; the
        // message is still worth printing.
        if term::emit_to_write_style(out, &config, sources.files(), &diagnostic.to_report()).is_err() {
            let _ = writeln!(out, "{}[{}]: {}", diagnostic.severity_word(), diagnostic.code.id(), diagnostic.message);
        }
    }
}

/// Renders to a plain string without colour (what the UI snapshots hold).
pub fn render_plain(sources: &Sources, diagnostics: &[Diagnostic]) -> String {
    let mut buffer = codespan_reporting::term::termcolor::NoColor::new(Vec::new());
    render_human(sources, diagnostics, &mut buffer);
    String::from_utf8_lossy(&buffer.into_inner()).into_owned()
}

impl Diagnostic {
    fn severity_word(&self) -> &'static str {
        match self.severity() {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }

    pub fn to_json(&self, sources: &Sources) -> JsonDiagnostic {
        let (line, column) = sources.line_column(self.primary.span.file, self.primary.span.start);
        JsonDiagnostic {
            code: self.code.id(),
            severity: self.severity(),
            message: self.message.clone(),
            label: self.primary.message.clone(),
            file: sources.name(self.primary.span.file).to_string(),
            line,
            column,
            help: self.help.clone(),
            notes: self.notes.clone(),
            related: self
                .secondary
                .iter()
                .map(|label| {
                    let (line, column) = sources.line_column(label.span.file, label.span.start);
                    JsonLabel {
                        message: label.message.clone(),
                        file: sources.name(label.span.file).to_string(),
                        line,
                        column,
                    }
                })
                .collect(),
        }
    }
}

/// A secondary label: what else the diagnostic points at, and why.
#[derive(Serialize)]
pub struct JsonLabel {
    pub message: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
}

#[derive(Serialize)]
pub struct JsonDiagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub label: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub help: Option<String>,
    pub notes: Vec<String>,
    pub related: Vec<JsonLabel>,
}
