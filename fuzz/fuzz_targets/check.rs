//! `cargo +nightly fuzz run check`: any bytes, as a `.arch` file, must give
//! diagnostics or a model, never a panic.
#![no_main]

use archc::elaborate::{Options, compile};
use archc::source::Sources;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut sources = Sources::new();
    let result = compile(&mut sources, "fuzz.arch", text, &Options::default());
    let _ = archc::diagnostics::render_plain(&sources, &result.diagnostics);
    for model in &result.models {
        let _ = archc::cost::report(model, archc::cost::Convention::Full, 1, archc::cost::GroupBy::Block);
    }
});
