//! The incremental tree, roots of earlier sizes and both proofs against the RFC 9162
//! reference, the transparency-dev known answers, tamper probes and restarts.

use throughcare_tlog::{
    consistency_proof, empty_root, inclusion_proof, leaf_hash, root_at, verify_consistency,
    verify_inclusion, Error, Hash, MemoryStore, NodeStore, Tree,
};

use crate::reference::Reference;

const MAX: usize = 300;

/// Leaf `i`: a few bytes that differ per leaf and in length.
fn leaf(i: usize) -> Vec<u8> {
    format!("leaf {i}{}", "x".repeat(i % 7)).into_bytes()
}

fn build(n: usize) -> (Tree, MemoryStore, Reference) {
    let mut tree = Tree::new();
    let mut store = MemoryStore::new();
    for i in 0..n {
        store.insert(&tree.append(&leaf(i)));
    }
    (tree, store, Reference::new((0..n).map(leaf).collect()))
}

/// splitmix64: fixed-seed pairs without a dependency.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        (z ^ (z >> 31)) % n
    }
}

#[test]
fn every_size_root_equals_the_reference_incrementally_and_from_the_store() {
    let reference = Reference::new((0..MAX).map(leaf).collect());
    let mut tree = Tree::new();
    let mut store = MemoryStore::new();
    assert_eq!(tree.root(), empty_root());
    assert_eq!(root_at(&store, 0), Ok(empty_root()));
    for n in 1..=MAX {
        let nodes = tree.append(&leaf(n - 1));
        // Exactly the newly complete subtrees: the leaf and one parent per trailing 1 bit.
        assert_eq!(nodes.len(), 1 + (n as u64 - 1).trailing_ones() as usize);
        for node in &nodes {
            let width = 1usize << node.level;
            let lo = node.index as usize * width;
            assert_eq!(node.hash, reference.mth(lo, lo + width), "node {node:?}");
        }
        store.insert(&nodes);
        assert_eq!(tree.size(), n as u64);
        assert_eq!(tree.root(), reference.mth(0, n), "size {n}");
        assert_eq!(tree.right_edge().len(), (n as u64).count_ones() as usize);
    }
    // Every complete subtree is stored once: 2n - popcount(n) nodes.
    assert_eq!(store.len(), 2 * MAX - (MAX as u64).count_ones() as usize);
    // Roots of all earlier sizes, from the complete nodes alone.
    for n in 0..=MAX {
        assert_eq!(
            root_at(&store, n as u64),
            Ok(reference.mth(0, n)),
            "size {n}"
        );
    }
}

#[test]
fn inclusion_proofs_for_every_leaf_of_every_size_equal_the_reference_and_verify() {
    let (_, store, reference) = build(MAX);
    for n in 1..=MAX {
        let root = reference.mth(0, n);
        for m in 0..n {
            let proof = inclusion_proof(&store, m as u64, n as u64).unwrap();
            assert_eq!(proof, reference.path(m, n), "leaf {m} of {n}");
            verify_inclusion(&reference.leaf_hash(m), m as u64, n as u64, &proof, &root)
                .unwrap_or_else(|e| panic!("leaf {m} of {n}: {e}"));
        }
    }
}

fn consistency_pairs() -> Vec<(usize, usize)> {
    let mut pairs: Vec<_> = (1..=64)
        .flat_map(|n| (0..=n).map(move |m| (m, n)))
        .collect();
    let mut rng = Rng(0x7100_c0de);
    for _ in 0..3000 {
        let n = 65 + rng.below((MAX - 64) as u64) as usize;
        let m = rng.below(n as u64 + 1) as usize;
        pairs.push((m, n));
    }
    pairs
}

#[test]
fn consistency_proofs_equal_the_reference_and_verify() {
    let (_, store, reference) = build(MAX);
    for (m, n) in consistency_pairs() {
        let proof = consistency_proof(&store, m as u64, n as u64).unwrap();
        let expected = if m == 0 || m == n {
            Vec::new()
        } else {
            reference.proof(m, n)
        };
        assert_eq!(proof, expected, "{m} -> {n}");
        verify_consistency(
            m as u64,
            n as u64,
            &reference.mth(0, m),
            &reference.mth(0, n),
            &proof,
        )
        .unwrap_or_else(|e| panic!("{m} -> {n}: {e}"));
    }
}

fn flip(proof: &[Hash], i: usize, bit: u8) -> Vec<Hash> {
    let mut p = proof.to_vec();
    p[i][0] ^= bit;
    p
}

/// Changed index, size, leaf or root, and added, removed or altered hashes: all refused.
/// (Not every other size: leaf 0 of 15 and of 16 have proofs of the same shape, and the
/// root of 15 folds from one as from the other. The root is what binds the size, and
/// the signed checkpoint binds the root to its size.)
fn tampered_inclusions(m: u64, n: u64, leaf: Hash, proof: &[Hash], root: Hash) {
    let some = [0xab; 32];
    let mut probes: Vec<(u64, u64, Hash, Vec<Hash>, Hash, String)> = vec![
        (
            m.wrapping_sub(1),
            n,
            leaf,
            proof.to_vec(),
            root,
            "index - 1".into(),
        ),
        (m + 1, n, leaf, proof.to_vec(), root, "index + 1".into()),
        (m ^ 2, n, leaf, proof.to_vec(), root, "index ^ 2".into()),
        (m, n * 2, leaf, proof.to_vec(), root, "size * 2".into()),
        (m, n / 2, leaf, proof.to_vec(), root, "size / 2".into()),
        (m, n, some, proof.to_vec(), root, "wrong leaf".into()),
        (
            m,
            n,
            leaf,
            proof.to_vec(),
            empty_root(),
            "empty root".into(),
        ),
        (m, n, leaf, proof.to_vec(), some, "some root".into()),
        (
            m,
            n,
            leaf,
            [proof, &[some]].concat(),
            root,
            "trailing hash".into(),
        ),
        (
            m,
            n,
            leaf,
            [proof, &[root]].concat(),
            root,
            "trailing root".into(),
        ),
        (
            m,
            n,
            leaf,
            [&[root], proof].concat(),
            root,
            "leading root".into(),
        ),
    ];
    for i in 0..proof.len() {
        probes.push((m, n, leaf, flip(proof, i, 8), root, format!("bit in [{i}]")));
    }
    if let Some((_, rest)) = proof.split_last() {
        probes.push((m, n, leaf, rest.to_vec(), root, "last removed".into()));
    }
    if proof.len() > 1 {
        let inserted = [&proof[..1], &[some], &proof[1..]].concat();
        probes.push((m, n, leaf, inserted, root, "hash inserted".into()));
    }
    for (m2, n2, leaf2, proof2, root2, what) in probes {
        assert!(
            verify_inclusion(&leaf2, m2, n2, &proof2, &root2).is_err(),
            "leaf {m} of {n}: verified with {what}"
        );
    }
}

fn tampered_consistencies(m: u64, n: u64, r1: Hash, r2: Hash, proof: &[Hash]) {
    let some = [0xcd; 32];
    let mut probes: Vec<(u64, u64, Hash, Hash, Vec<Hash>, String)> = vec![
        (m - 1, n, r1, r2, proof.to_vec(), "first - 1".into()),
        (m + 1, n, r1, r2, proof.to_vec(), "first + 1".into()),
        (m ^ 2, n, r1, r2, proof.to_vec(), "first ^ 2".into()),
        (m, n * 2, r1, r2, proof.to_vec(), "second * 2".into()),
        (m, n / 2, r1, r2, proof.to_vec(), "second / 2".into()),
        (m, n, some, r2, proof.to_vec(), "wrong first root".into()),
        (m, n, r1, some, proof.to_vec(), "wrong second root".into()),
        (m, n, r2, r1, proof.to_vec(), "swapped roots".into()),
        (m, n, r1, r2, Vec::new(), "empty proof".into()),
        (
            m,
            n,
            r1,
            r2,
            [proof, &[some]].concat(),
            "trailing hash".into(),
        ),
        (
            m,
            n,
            r1,
            r2,
            [proof, &[r1]].concat(),
            "trailing first root".into(),
        ),
        (
            m,
            n,
            r1,
            r2,
            [proof, &[r2]].concat(),
            "trailing second root".into(),
        ),
        (
            m,
            n,
            r1,
            r2,
            [&[r1], proof].concat(),
            "leading first root".into(),
        ),
        (
            m,
            n,
            r1,
            r2,
            [&[r2], proof].concat(),
            "leading second root".into(),
        ),
        (
            m,
            n,
            r1,
            r2,
            [&proof[..1], proof].concat(),
            "leading proof[0]".into(),
        ),
        (
            m,
            n,
            r1,
            r2,
            proof[..proof.len() - 1].to_vec(),
            "truncated".into(),
        ),
    ];
    for i in 0..proof.len() {
        probes.push((m, n, r1, r2, flip(proof, i, 16), format!("bit in [{i}]")));
    }
    for (m2, n2, r1b, r2b, proof2, what) in probes {
        assert!(
            verify_consistency(m2, n2, &r1b, &r2b, &proof2).is_err(),
            "{m} -> {n}: verified with {what}"
        );
    }
}

#[test]
fn tampered_proofs_fail() {
    let (_, store, reference) = build(MAX);
    // A sample (hashing is slow in debug builds): every leaf of some sizes, and a fifth of
    // the consistency pairs.
    for n in (1..=MAX).step_by(13).chain([2, 3, 4, 8, 64, 255, 256, 257]) {
        let root = reference.mth(0, n);
        for m in 0..n {
            let proof = reference.path(m, n);
            tampered_inclusions(m as u64, n as u64, reference.leaf_hash(m), &proof, root);
        }
    }
    for (m, n) in consistency_pairs().into_iter().step_by(5) {
        if m == 0 || m == n {
            continue;
        }
        let proof = consistency_proof(&store, m as u64, n as u64).unwrap();
        let (r1, r2) = (reference.mth(0, m), reference.mth(0, n));
        tampered_consistencies(m as u64, n as u64, r1, r2, &proof);
    }
}

#[test]
fn trivial_consistency_takes_the_empty_proof_and_nothing_else() {
    let (r1, r2) = ([1; 32], [2; 32]);
    let empty = empty_root();
    assert_eq!(verify_consistency(0, 0, &empty, &empty, &[]), Ok(()));
    assert_eq!(verify_consistency(0, 5, &empty, &r2, &[]), Ok(()));
    assert_eq!(verify_consistency(3, 3, &r1, &r1, &[]), Ok(()));
    assert!(verify_consistency(3, 3, &r1, &r2, &[]).is_err());
    assert!(verify_consistency(3, 3, &r1, &r1, &[r1]).is_err());
    assert!(verify_consistency(0, 5, &r1, &r2, &[]).is_err());
    assert!(verify_consistency(0, 5, &empty, &r2, &[empty]).is_err());
    assert!(verify_consistency(1, 2, &r1, &r2, &[]).is_err());
    assert!(matches!(
        verify_consistency(2, 1, &r1, &r2, &[]),
        Err(Error::InvalidRange(_))
    ));
    assert!(verify_inclusion(&r1, 0, 0, &[], &empty).is_err());
    assert!(verify_inclusion(&r1, 1, 1, &[], &r1).is_err());
    assert_eq!(verify_inclusion(&r1, 0, 1, &[], &r1), Ok(()));
}

/// transparency-dev/merkle's RFC 6962 vectors (testonly/constants.go, proof/verify_test.go).
#[test]
fn transparency_dev_known_answers() {
    let h = |s: &str| -> Hash { hex::decode(s).unwrap().try_into().unwrap() };
    let leaves = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    let roots = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    // Every complete subtree node, by level then index.
    let nodes: [&[&str]; 4] = [
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
        ],
        &[
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        ],
        &[
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
        &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
    ];
    let mut tree = Tree::new();
    let mut store = MemoryStore::new();
    assert_eq!(tree.root(), h(roots[0]));
    for (i, l) in leaves.iter().enumerate() {
        store.insert(&tree.append(&hex::decode(l).unwrap()));
        assert_eq!(tree.root(), h(roots[i + 1]), "size {}", i + 1);
    }
    assert_eq!(store.len(), 15);
    for (level, row) in nodes.iter().enumerate() {
        for (index, node) in row.iter().enumerate() {
            assert_eq!(store.get(level as u8, index as u64), Ok(Some(h(node))));
        }
    }
    // (leaf index, size, proof).
    let inclusions: &[(u64, u64, &[&str])] = &[
        (0, 8, &[nodes[0][1], nodes[1][1], nodes[2][1]]),
        (5, 8, &[nodes[0][4], nodes[1][3], nodes[2][0]]),
        (2, 3, &[nodes[1][0]]),
        (1, 5, &[nodes[0][0], nodes[1][1], nodes[0][4]]),
    ];
    for &(m, n, expected) in inclusions {
        let expected: Vec<Hash> = expected.iter().map(|s| h(s)).collect();
        assert_eq!(inclusion_proof(&store, m, n), Ok(expected.clone()));
        let leaf = leaf_hash(&hex::decode(leaves[m as usize]).unwrap());
        assert_eq!(
            verify_inclusion(&leaf, m, n, &expected, &h(roots[n as usize])),
            Ok(())
        );
    }
    // (first, second, proof).
    let consistencies: &[(u64, u64, &[&str])] = &[
        (1, 1, &[]),
        (1, 8, &[nodes[0][1], nodes[1][1], nodes[2][1]]),
        (6, 8, &[nodes[1][2], nodes[1][3], nodes[2][0]]),
        (2, 5, &[nodes[1][1], nodes[0][4]]),
        (6, 7, &[nodes[1][2], nodes[0][6], nodes[2][0]]),
    ];
    for &(m, n, expected) in consistencies {
        let expected: Vec<Hash> = expected.iter().map(|s| h(s)).collect();
        assert_eq!(consistency_proof(&store, m, n), Ok(expected.clone()));
        let (r1, r2) = (h(roots[m as usize]), h(roots[n as usize]));
        assert_eq!(verify_consistency(m, n, &r1, &r2, &expected), Ok(()));
    }
}

#[test]
fn restart_from_the_right_edge_or_the_store_continues_identically() {
    let (_, full_store, _) = build(MAX);
    for k in [
        0, 1, 2, 3, 7, 8, 9, 63, 64, 100, 127, 128, 129, 200, 255, 256,
    ] {
        let (original, store, _) = build(k);
        let mut original = original;
        let mut from_edge =
            Tree::from_right_edge(original.size(), original.right_edge().to_vec()).unwrap();
        let mut from_store = Tree::from_store(&store, k as u64).unwrap();
        let mut from_more_nodes = Tree::from_store(&full_store, k as u64).unwrap();
        assert_eq!(from_edge, original);
        assert_eq!(from_store, original);
        assert_eq!(from_more_nodes, original);
        for i in k..k + 45 {
            let nodes = original.append(&leaf(i));
            assert_eq!(
                from_edge.append(&leaf(i)),
                nodes,
                "restart at {k}, leaf {i}"
            );
            assert_eq!(
                from_store.append(&leaf(i)),
                nodes,
                "restart at {k}, leaf {i}"
            );
            assert_eq!(
                from_more_nodes.append(&leaf(i)),
                nodes,
                "restart at {k}, leaf {i}"
            );
            assert_eq!(from_edge.root(), original.root());
        }
    }
}

#[test]
fn refusals_say_what_is_wrong() {
    let (_, store, _) = build(10);
    assert!(matches!(
        inclusion_proof(&store, 10, 10),
        Err(Error::InvalidRange(_))
    ));
    assert!(matches!(
        consistency_proof(&store, 11, 10),
        Err(Error::InvalidRange(_))
    ));
    assert!(matches!(
        Tree::from_right_edge(3, vec![[0; 32]]),
        Err(Error::InvalidRange(_))
    ));
    // The store holds a tree of 10: larger trees lack nodes.
    // (Leaf 0's siblings in a tree of 12 are leaf 1, 2..4, 4..8 and 8..12, this last
    // not complete in the store.)
    assert_eq!(
        inclusion_proof(&store, 0, 12),
        Err(Error::MissingNode { level: 2, index: 2 })
    );
    assert_eq!(
        root_at(&store, 16),
        Err(Error::MissingNode { level: 4, index: 0 })
    );
    assert!(matches!(
        Tree::from_store(&MemoryStore::new(), 1),
        Err(Error::MissingNode { .. })
    ));
    // A store that cannot be read says so through the same error type.
    struct Down;
    impl NodeStore for Down {
        fn get(&self, _: u8, _: u64) -> Result<Option<Hash>, Error> {
            Err(Error::Unavailable("disk on fire".into()))
        }
    }
    assert_eq!(
        root_at(&Down, 3),
        Err(Error::Unavailable("disk on fire".into()))
    );
    let dyn_store: &dyn NodeStore = &store;
    assert_eq!(root_at(dyn_store, 10), root_at(&store, 10));
}
