//! The `codex-k8s` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(codex_k8s::cli::main())
}
