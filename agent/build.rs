use std::path::Path;

use anyhow::{Context as _, anyhow};

/// Builds agent-ebpf for bpfel-unknown-none with nightly and bpf-linker, and
/// leaves the object in OUT_DIR for `include_bytes_aligned!`, without its
/// DWARF.
fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new().no_deps().exec().context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|package| package.name.as_str() == "warrant-ebpf")
        .ok_or_else(|| anyhow!("warrant-ebpf package not found"))?;
    let root_dir = ebpf.manifest_path.parent().ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    aya_build::build_ebpf(
        [aya_build::Package { name: ebpf.name.as_str(), root_dir: root_dir.as_str(), ..Default::default() }],
        aya_build::Toolchain::default(),
    )?;
    let object =
        Path::new(&std::env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?).join(ebpf.name.as_str());
    // AYA_BUILD_SKIP leaves an earlier build's object, already stripped, or none.
    if object.exists() {
        strip_debug_info(&object)?;
    }
    Ok(())
}

/// Drops the DWARF sections and their relocations from the object at
/// `path`: bpf-linker made the BTF (which the kernel reads) from them, and
/// nothing reads them after. They were three quarters of the object, and
/// aya-obj reads every section's relocations when it parses the object (at
/// each daemon start): ~1 MB of the daemon's peak resident size.
fn strip_debug_info(path: &Path) -> anyhow::Result<()> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut builder = object::build::elf::Builder::read(&*data).context("reading the BPF object as ELF")?;
    let mut stripped_any = false;
    for section in builder.sections.iter_mut() {
        if section.name.starts_with(b".debug") || section.name.starts_with(b".rel.debug") {
            section.delete = true;
            stripped_any = true;
        }
    }
    if !stripped_any {
        // Stripped already (its own .shstrtab added then).
        return Ok(());
    }
    builder.delete_orphans();
    // LLVM names the sections in .strtab, beside the symbols; the writer
    // wants a section-name table of its own.
    let names = builder.sections.add();
    names.name = ".shstrtab".into();
    names.sh_type = object::elf::SHT_STRTAB;
    names.data = object::build::elf::SectionData::SectionString;
    let mut stripped = Vec::new();
    builder.write(&mut stripped).context("writing the BPF object without DWARF")?;
    std::fs::write(path, stripped).with_context(|| format!("writing {}", path.display()))
}
