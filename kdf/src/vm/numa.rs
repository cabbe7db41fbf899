//! `--numa` and `--numa-distance`: the guest's NUMA nodes, parsed, checked
//! against `-m` and `--cpus` before anything starts, and turned into QEMU's
//! arguments: one shared memfd backend per node (so virtiofsd can still map
//! the guest's memory) and a `-numa node` for each. Pure.

/// One `--numa MEM[,cpus=A-B]...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub memory_mib: u64,
    /// Inclusive CPU ranges; none: a node with memory only.
    pub cpus: Vec<(u32, u32)>,
}

/// One `--numa-distance SRC,DST=VAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Distance {
    pub src: u32,
    pub dst: u32,
    pub value: u8,
}

/// The guest's NUMA layout; empty: one node, as QEMU does by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Numa {
    pub nodes: Vec<Node>,
    pub distances: Vec<Distance>,
}

/// The most nodes kdf sets up (x86's default `CONFIG_NODES_SHIFT` is 6).
pub const MAX_NODES: usize = 64;

/// `A` or `A-B`.
fn parse_cpus(s: &str) -> Result<(u32, u32), String> {
    let num = |n: &str| n.trim().parse::<u32>().map_err(|_| format!("{s:?} is not a CPU or a range A-B"));
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(s)?, num(s)?),
    };
    if a > b {
        return Err(format!("the CPU range {s} is backwards"));
    }
    Ok((a, b))
}

/// Parses `MEM[,cpus=A-B]...` with `size` reading MEM (kdf's `-m` syntax).
pub fn parse_node(spec: &str, size: impl Fn(&str) -> Result<u64, String>) -> Result<Node, String> {
    let mut items = spec.split(',');
    let memory_mib = size(items.next().unwrap_or(""))?;
    let mut cpus = Vec::new();
    for item in items {
        match item.split_once('=') {
            Some(("cpus", v)) => cpus.push(parse_cpus(v)?),
            _ => return Err(format!("unknown item {item:?} (use MEM[,cpus=A-B], e.g. 512M,cpus=0-1)")),
        }
    }
    Ok(Node { memory_mib, cpus })
}

/// Parses `SRC,DST=VAL`.
pub fn parse_distance(spec: &str) -> Result<Distance, String> {
    let bad = || format!("{spec:?} is not SRC,DST=VALUE (e.g. 0,1=20)");
    let (nodes, value) = spec.split_once('=').ok_or_else(bad)?;
    let (src, dst) = nodes.split_once(',').ok_or_else(bad)?;
    let node = |n: &str| n.trim().parse::<u32>().map_err(|_| bad());
    let value: u8 = value.trim().parse().map_err(|_| format!("the distance {value:?} is not 10 to 255"))?;
    Ok(Distance { src: node(src)?, dst: node(dst)?, value })
}

/// Checks a layout against the machine: node memory adds up to `-m`, every
/// CPU below `--cpus` is in exactly one node, distances join two nodes that
/// exist with a value the ACPI SLIT can hold. QEMU would refuse most of these
/// itself, after kdf had started everything, in words about its options.
pub fn validate(numa: &Numa, cpus: u32, memory_mib: u64) -> Result<(), String> {
    let nodes = &numa.nodes;
    if nodes.is_empty() {
        return match numa.distances.first() {
            Some(_) => Err("--numa-distance needs --numa nodes".into()),
            None => Ok(()),
        };
    }
    if nodes.len() > MAX_NODES {
        return Err(format!("{} NUMA nodes; kdf sets up at most {MAX_NODES}", nodes.len()));
    }
    let total: u64 = nodes.iter().map(|n| n.memory_mib).sum();
    if total != memory_mib {
        return Err(format!(
            "the --numa nodes have {total} MiB of memory in all, the guest has {memory_mib} MiB (-m): \
             they must be equal"
        ));
    }
    let mut owner: Vec<Option<usize>> = vec![None; cpus as usize];
    for (i, node) in nodes.iter().enumerate() {
        for &(a, b) in &node.cpus {
            if b >= cpus {
                return Err(format!(
                    "node {i} has CPU {b}, but the guest has CPUs 0-{} (--cpus {cpus})",
                    cpus - 1
                ));
            }
            for cpu in a..=b {
                if let Some(other) = owner[cpu as usize].replace(i) {
                    return Err(format!("CPU {cpu} is in node {other} and node {i}; a CPU is in one node"));
                }
            }
        }
    }
    if let Some(cpu) = owner.iter().position(Option::is_none) {
        return Err(format!("CPU {cpu} is in no --numa node; give every CPU below --cpus {cpus} a node"));
    }
    for d in &numa.distances {
        if d.src as usize >= nodes.len() || d.dst as usize >= nodes.len() {
            return Err(format!(
                "--numa-distance {},{}: there are nodes 0-{}",
                d.src,
                d.dst,
                nodes.len() - 1
            ));
        }
        if d.src == d.dst {
            return Err(format!("--numa-distance {0},{0}: a node's distance to itself is always 10", d.src));
        }
        if d.value <= 10 {
            return Err(format!(
                "--numa-distance {},{}={}: between two nodes it is 11 to 255",
                d.src, d.dst, d.value
            ));
        }
    }
    Ok(())
}

/// QEMU's memory and NUMA arguments: one shared memfd backend per node.
pub fn args(numa: &Numa) -> Vec<String> {
    let mut out = Vec::new();
    for (i, node) in numa.nodes.iter().enumerate() {
        out.extend([
            "-object".into(),
            format!("memory-backend-memfd,id=mem{i},size={}M,share=on", node.memory_mib),
            "-numa".into(),
        ]);
        let cpus: String = node.cpus.iter().map(|(a, b)| format!(",cpus={a}-{b}")).collect();
        out.push(format!("node,nodeid={i},memdev=mem{i}{cpus}"));
    }
    for d in &numa.distances {
        out.extend(["-numa".into(), format!("dist,src={},dst={},val={}", d.src, d.dst, d.value)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mib(s: &str) -> Result<u64, String> {
        s.trim_end_matches('M').parse().map_err(|_| format!("bad size {s}"))
    }

    fn node(spec: &str) -> Node {
        parse_node(spec, mib).unwrap()
    }

    #[test]
    fn nodes_parse_with_cpu_ranges() {
        assert_eq!(node("512M"), Node { memory_mib: 512, cpus: vec![] });
        assert_eq!(node("512M,cpus=0-1"), Node { memory_mib: 512, cpus: vec![(0, 1)] });
        assert_eq!(node("256,cpus=0,cpus=2-3"), Node { memory_mib: 256, cpus: vec![(0, 0), (2, 3)] });
        assert!(parse_node("512M,cpus=3-1", mib).unwrap_err().contains("backwards"));
        assert!(parse_node("512M,mem=1", mib).unwrap_err().contains("unknown item"));
        assert!(parse_node("lots", mib).is_err());
    }

    #[test]
    fn distances_parse() {
        assert_eq!(parse_distance("0,1=20"), Ok(Distance { src: 0, dst: 1, value: 20 }));
        assert!(parse_distance("0-1=20").is_err());
        assert!(parse_distance("0,1").is_err());
        assert!(parse_distance("0,1=300").is_err());
    }

    fn layout(nodes: &[&str], distances: &[&str]) -> Numa {
        Numa {
            nodes: nodes.iter().map(|n| node(n)).collect(),
            distances: distances.iter().map(|d| parse_distance(d).unwrap()).collect(),
        }
    }

    #[test]
    fn a_layout_must_match_the_machine() {
        let two = layout(&["512M,cpus=0", "512M,cpus=1"], &["0,1=20"]);
        assert_eq!(validate(&two, 2, 1024), Ok(()));
        assert!(validate(&two, 2, 2048).unwrap_err().contains("1024 MiB of memory in all"));
        assert!(validate(&two, 1, 1024).unwrap_err().contains("node 1 has CPU 1"));
        assert!(validate(&two, 3, 1024).unwrap_err().contains("CPU 2 is in no --numa node"));
        let overlap = layout(&["512M,cpus=0-1", "512M,cpus=1"], &[]);
        assert!(validate(&overlap, 2, 1024).unwrap_err().contains("CPU 1 is in node 0 and node 1"));
        let memory_only = layout(&["512M,cpus=0-1", "512M"], &[]);
        assert_eq!(validate(&memory_only, 2, 1024), Ok(()));
        assert!(validate(&layout(&["512M,cpus=0", "512M,cpus=1"], &["0,2=20"]), 2, 1024).is_err());
        assert!(validate(&layout(&["512M,cpus=0", "512M,cpus=1"], &["1,1=10"]), 2, 1024).is_err());
        assert!(validate(&layout(&["512M,cpus=0", "512M,cpus=1"], &["0,1=10"]), 2, 1024).is_err());
        assert!(validate(&layout(&[], &["0,1=20"]), 2, 1024).is_err());
        assert_eq!(validate(&Numa::default(), 2, 1024), Ok(()));
    }

    #[test]
    fn each_node_gets_its_own_shared_backend() {
        let a = args(&layout(&["512M,cpus=0", "256M,cpus=1-2,cpus=4", "256M,cpus=3"], &["0,1=30"])).join(" ");
        assert_eq!(
            a,
            "-object memory-backend-memfd,id=mem0,size=512M,share=on -numa node,nodeid=0,memdev=mem0,cpus=0-0 \
             -object memory-backend-memfd,id=mem1,size=256M,share=on -numa node,nodeid=1,memdev=mem1,cpus=1-2,cpus=4-4 \
             -object memory-backend-memfd,id=mem2,size=256M,share=on -numa node,nodeid=2,memdev=mem2,cpus=3-3 \
             -numa dist,src=0,dst=1,val=30"
        );
        assert!(args(&Numa::default()).is_empty());
    }
}
