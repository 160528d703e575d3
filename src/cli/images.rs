//! `codex-k8s images`: every image reference a target deploys (from its
//! rendered objects, `--set` overrides applied), with the build settings the
//! inventory declares for it, so CI builds and pushes what the render uses.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Result};
use serde::Serialize;

use super::targets::{self, RequestArgs};
use super::{exit, load_project, Output, Project};
use crate::inventory::names::SlotName;
use crate::render::{image_uses, render_target, target_context, ImageUse};

/// Arguments of `images`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Environment.
    #[arg(long, value_name = "ENV", add = clap_complete::ArgValueCandidates::new(super::complete::environments))]
    env: String,
    /// Slot (slot environments).
    #[arg(long, value_name = "SLOT", add = clap_complete::ArgValueCandidates::new(super::complete::slots))]
    slot: Option<SlotName>,
    #[command(flatten)]
    request: RequestArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Formats of `images`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table.
    Text,
    /// Machine-readable (docs/cli.md).
    Json,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ImagesView {
    target: String,
    images: Vec<ImageView>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageView {
    /// The reference as rendered.
    image: String,
    /// The `images:` entry it comes from (none: written literally in a template).
    name: Option<String>,
    build: Option<BuildView>,
    used_by: Vec<ImageUse>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildView {
    context: String,
    dockerfile: String,
    target: Option<String>,
}

/// Prints the images of one target.
pub fn run(file: &Path, args: Args, out: &mut Output) -> Result<u8> {
    let Project { inventory, engine } = load_project(file, out)?;
    let out_dir = targets::out_dir(&inventory, &args.request.out)?;
    let selection =
        targets::Selection { env: Some(args.env.clone()), slots: args.slot.clone().into_iter().collect(), all: false };
    let requests = targets::requests(&inventory, &selection, &args.request, &targets::DiskTree(&out_dir))?;
    let [request] = requests.as_slice() else { bail!("images lists one target") };
    let rendered = render_target(&inventory, &engine, request);
    let ctx = target_context(&inventory, &engine, request);
    let (rendered, ctx) = match (rendered, ctx) {
        (Ok(r), Ok(c)) => (r, c),
        (Err(ds), _) | (_, Err(ds)) => {
            out.diagnostics(&ds)?;
            return Err(super::Reported.into());
        }
    };
    // Rendered reference → the `images:` entry that renders it (first name wins).
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, image) in &ctx.images {
        names.entry(image.as_str()).or_insert(name.as_str());
    }
    let mut grouped: BTreeMap<String, Vec<ImageUse>> = BTreeMap::new();
    for u in image_uses(&rendered.objects) {
        grouped.entry(u.image.clone()).or_default().push(u);
    }
    let images = grouped
        .into_iter()
        .map(|(image, used_by)| {
            let name = names.get(image.as_str()).map(|n| (*n).to_owned());
            let build =
                name.as_ref().and_then(|n| inventory.images.get(n)).and_then(|i| i.build.as_ref()).map(|b| BuildView {
                    context: b.context().to_owned(),
                    dockerfile: b.dockerfile(),
                    target: b.target_for(&args.env).map(str::to_owned),
                });
            ImageView { image, name, build, used_by }
        })
        .collect();
    let view = ImagesView { target: rendered.target.dir(), images };
    match args.format {
        Format::Json => writeln!(out.out, "{}", serde_json::to_string_pretty(&view)?)?,
        Format::Text => print_table(&view, out)?,
    }
    Ok(exit::OK)
}

/// One row per image: reference, inventory name, context, Dockerfile, build
/// target, and the components using it; columns padded to their widest cell.
fn print_table(view: &ImagesView, out: &mut Output) -> Result<()> {
    let mut rows = vec![["IMAGE", "NAME", "CONTEXT", "DOCKERFILE", "TARGET", "USED BY"].map(String::from)];
    for i in &view.images {
        let mut users: Vec<&str> = i.used_by.iter().map(|u| u.component.as_str()).collect();
        users.dedup();
        let b = i.build.as_ref();
        rows.push([
            i.image.clone(),
            i.name.clone().unwrap_or_else(|| "-".into()),
            b.map_or("-".into(), |b| b.context.clone()),
            b.map_or("-".into(), |b| b.dockerfile.clone()),
            b.and_then(|b| b.target.clone()).unwrap_or_else(|| "-".into()),
            users.join(","),
        ]);
    }
    let widths: Vec<usize> = (0..6).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for r in &rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        writeln!(out.out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}
