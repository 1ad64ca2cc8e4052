//! What the CLI writes to stdout. A reader that went away (`micros report … | head`)
//! ends the command quietly with success, as other Unix tools end on SIGPIPE, instead
//! of the panic `println!` gives; the operation it reported on is not affected.

use std::io::Write;

/// Writes one line (see `say!`).
pub fn line(text: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("micros: cannot write to stdout: {error}");
        std::process::exit(1);
    }
}

/// `println!` for the CLI's output, through [`line`].
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}
