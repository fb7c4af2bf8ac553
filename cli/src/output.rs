//! Output helpers: plain-text tables, short peer ids, and downloads renamed into place when complete.

/// Prints rows under a header, columns padded to their widest cell.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> =
            cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|s| s.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// A peer id shortened to its last 8 characters, as in `…a1b2c3d4`.
pub(crate) fn short(id: &str) -> String {
    let n = id.chars().count();
    if n <= 12 {
        id.to_string()
    } else {
        format!("…{}", id.chars().skip(n - 8).collect::<String>())
    }
}

/// Milliseconds with a unit, or `-`.
pub(crate) fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| if v < 10.0 { format!("{v:.2}ms") } else { format!("{v:.0}ms") })
}

/// A download written beside its target and renamed into place only once
/// it is complete, so a failed download leaves no file.
pub(crate) struct PartFile {
    part: std::path::PathBuf,
    target: std::path::PathBuf,
}

impl PartFile {
    /// Creates `<target>.part-<pid>` for writing.
    pub(crate) async fn create(
        target: &std::path::Path,
    ) -> anyhow::Result<(PartFile, tokio::fs::File)> {
        use anyhow::Context;
        let part = target.with_extension(format!("part-{}", std::process::id()));
        let f = tokio::fs::File::create(&part)
            .await
            // The user's name for it: the part file is ours.
            .with_context(|| format!("cannot write {}", target.display()))?;
        Ok((PartFile { part, target: target.to_path_buf() }, f))
    }

    /// Renames the part into place if the download succeeded, else removes it.
    pub(crate) fn finish<T, E: Into<anyhow::Error>>(
        self,
        result: Result<T, E>,
    ) -> anyhow::Result<T> {
        use anyhow::Context;
        match result {
            Ok(v) => {
                std::fs::rename(&self.part, &self.target)
                    .with_context(|| format!("cannot write {}", self.target.display()))?;
                Ok(v)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&self.part);
                Err(e.into())
            }
        }
    }
}

/// An error and its causes on one line, each cause once: an error whose
/// text already holds its source's (`path: No such file (os error 2)`)
/// does not get it repeated after it.
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || out.contains(text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(text);
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::one_line;
    use anyhow::Context;

    #[test]
    fn causes_appear_once_on_one_line() {
        let io = std::io::Error::from_raw_os_error(17);
        let e = anyhow::Error::new(io)
            .context(format!("identity.key: {}", std::io::Error::from_raw_os_error(17)));
        let line = one_line(&e);
        assert_eq!(line.matches("os error 17").count(), 1, "{line}");
        let e = Err::<(), _>(anyhow::anyhow!("inner\ndetail")).context("outer").unwrap_err();
        assert_eq!(one_line(&e), "outer: inner detail");
    }
}
