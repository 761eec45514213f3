//! Files in and out: CSV samples, read with precise errors and written atomically.

use crate::points::Points;
use crate::points::Samples;
use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;

/// Refuses an output that is one of the command's inputs (the same file by any path, a
/// symbolic link included): writing it would replace what the command is reading.
pub fn ensure_not_an_input(out: &Path, inputs: &[&Path]) -> Result<()> {
    let Ok(written) = out.canonicalize() else {
        return Ok(()); // the output does not exist yet
    };
    for input in inputs {
        if input.canonicalize().is_ok_and(|read| read == written) {
            bail!(
                "--out {} is the input {} itself: write to another file",
                out.display(),
                input.display()
            );
        }
    }
    Ok(())
}

/// Writes `path` through a temporary file in the same directory, renamed into place only when
/// `write` succeeded: a failure or an interruption never leaves a partial file. A path that
/// exists but is not a regular file (`/dev/null`, `/dev/stdout`, a pipe) is written directly:
/// a rename would replace the device with a file, and there is no file to keep whole. `-` is
/// standard output.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let context = || format!("cannot write {}", path.display());
    if path == Path::new("-") {
        let mut named = Named {
            inner: std::io::BufWriter::new(std::io::stdout().lock()),
            path: Path::new("standard output"),
        };
        write(&mut named)?;
        return Ok(named.flush()?);
    }
    if is_special(path) {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(context)?;
        let mut named = Named {
            inner: std::io::BufWriter::new(file),
            path,
        };
        write(&mut named)?;
        return Ok(named.flush()?);
    }
    let mut tmp = temporary_in(path, "")?;
    {
        let mut named = Named {
            inner: std::io::BufWriter::new(tmp.as_file_mut()),
            path,
        };
        write(&mut named)?;
        named.flush()?;
    }
    commit_temporary(tmp, path)
}

/// A writer whose errors name the file written (the errors of `write_atomically`'s closure
/// pass through unchanged: they may not be about writing at all).
struct Named<'a, W: Write> {
    inner: W,
    path: &'a Path,
}

impl<W: Write> Named<'_, W> {
    fn name(&self, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(
            e.kind(),
            format!("cannot write {}: {e}", self.path.display()),
        )
    }
}

impl<W: Write> Write for Named<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).map_err(|e| self.name(e))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().map_err(|e| self.name(e))
    }
}

/// A temporary file for `path` in its directory (created if missing), named with `suffix`,
/// made as a new file would be (mode 0666 less the umask) or, replacing a file, keeping that
/// file's permissions when it is committed.
fn temporary_in(path: &Path, suffix: &str) -> Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut builder = tempfile::Builder::new();
    builder.suffix(suffix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))
}

/// A temporary file beside `path` with the same extension (for writers that open a path
/// and pick the format by its extension); [`commit_temporary`] renames it into place.
pub fn temporary_sibling(path: &Path) -> Result<tempfile::NamedTempFile> {
    let suffix = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    temporary_in(path, &suffix)
}

/// Whether `path` exists and is not a regular file (a device or a pipe), which the writers
/// here write into rather than replace.
fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Renames a finished temporary file (from [`temporary_sibling`]) to `path` (or, for a device
/// or a pipe, copies it there; see [`write_atomically`]).
pub fn commit_temporary(tmp: tempfile::NamedTempFile, path: &Path) -> Result<()> {
    let context = || format!("cannot write {}", path.display());
    if is_special(path) || path == Path::new("-") {
        let bytes = std::fs::read(tmp.path()).with_context(context)?;
        return write_atomically(path, |w| Ok(w.write_all(&bytes)?));
    }
    if let Ok(existing) = std::fs::metadata(path) {
        std::fs::set_permissions(tmp.path(), existing.permissions()).with_context(context)?;
    }
    tmp.as_file().sync_all().with_context(context)?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(context)?;
    Ok(())
}

/// Writes points as CSV with a header `x0,x1,…`; f32 values print exactly (shortest
/// round-trip form), so a file read back gives the same bits.
pub fn write_csv(path: &Path, samples: &Samples) -> Result<()> {
    write_atomically(path, |w| {
        write_csv_header(w, samples.dim)?;
        write_csv_rows(w, samples)
    })
}

/// The header row `x0,x1,…` of `dim` columns.
pub fn write_csv_header(w: &mut dyn Write, dim: usize) -> Result<()> {
    for d in 0..dim {
        write!(w, "{}x{d}", if d == 0 { "" } else { "," })?;
    }
    Ok(writeln!(w)?)
}

/// One row per point, each f32 in its shortest form that reads back to the same bits.
pub fn write_csv_rows(w: &mut dyn Write, samples: &Samples) -> Result<()> {
    for row in samples.rows() {
        for (d, v) in row.iter().enumerate() {
            write!(w, "{}{v:?}", if d == 0 { "" } else { "," })?;
        }
        writeln!(w)?;
    }
    Ok(())
}

/// `cell` for a message: at most 40 characters, with `…` where it was cut.
fn shortened(cell: &str) -> String {
    const MAX: usize = 40;
    match cell.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &cell[..end]),
        None => cell.to_owned(),
    }
}

/// Reads a CSV of points: a header row of column names, then one point per row, all finite
/// numbers. Errors name the file, line and column.
pub fn read_csv(path: &Path) -> Result<Points> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let header = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header row", path.display()))?;
    let dim = header.len();
    if dim == 0 {
        bail!(
            "{}: line 1: the header row names no columns",
            path.display()
        );
    }
    // Taken as a header, a first row of numbers would be a point silently dropped.
    if header.iter().all(|cell| cell.parse::<f64>().is_ok()) {
        bail!(
            "{}: line 1 is numbers, not column names: the file needs a header row \
             (e.g. `x0,x1`)",
            path.display()
        );
    }
    let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    let name = path
        .file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy();
    let progress = Progress::new(&format!("reading {name}"), bytes, "bytes");
    let mut reported = 0;
    let mut values = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record =
            record.with_context(|| format!("{}: cannot read row {}", path.display(), i + 2))?;
        let line = record.position().map_or(i as u64 + 2, |p| p.line());
        if i % 65_536 == 0 {
            let read = record.position().map_or(reported, |p| p.byte());
            progress.advance(read.saturating_sub(reported));
            reported = reported.max(read);
        }
        if record.len() != dim {
            bail!(
                "{}: line {line}: {} fields, the header has {dim}",
                path.display(),
                record.len()
            );
        }
        for (column, cell) in record.iter().enumerate() {
            let value: f64 = cell.parse().map_err(|_| {
                let separator = [';', '\t']
                    .into_iter()
                    .find(|c| cell.contains(*c))
                    .map_or(String::new(), |c| {
                        format!(" (columns are separated by commas, not {c:?})")
                    });
                anyhow::anyhow!(
                    "{}: line {line}, column {}: `{}` is not a number{separator}",
                    path.display(),
                    column + 1,
                    shortened(cell)
                )
            })?;
            if !value.is_finite() {
                bail!(
                    "{}: line {line}, column {}: `{}` is not finite",
                    path.display(),
                    column + 1,
                    shortened(cell)
                );
            }
            // Everything downstream (training, sampling, the chip) computes in f32.
            if value.abs() > f32::MAX as f64 {
                bail!(
                    "{}: line {line}, column {}: `{}` is beyond the f32 range (±3.4e38)",
                    path.display(),
                    column + 1,
                    shortened(cell)
                );
            }
            values.push(value);
        }
    }
    progress.finish();
    if values.is_empty() {
        bail!("{}: no data rows", path.display());
    }
    Ok(Points { dim, values })
}
