//! Longest chains in the prerequisite and segment graphs, found without recursion: a
//! snapshot that skipped validation may hold a cycle or a chain thousands deep, and
//! compiling it must neither overflow the stack nor leave a flag that evaluation would cut
//! short at [`MAX_DEPTH`](crate::MAX_DEPTH) and answer wrongly.
//!
//! A graph is given by its edges: `children[i]` lists the nodes that node `i` points to.

/// For each node, the number of nodes on the longest chain that starts there (itself
/// included); `None` for a node on a cycle or one whose chains lead into a cycle.
pub(crate) fn longest_chains(children: &[Vec<usize>]) -> Vec<Option<usize>> {
    let parents = reversed(children);
    // Kahn's algorithm from the leaves up: a node is measured once all it points to is.
    let mut pending: Vec<usize> = children.iter().map(Vec::len).collect();
    let mut ready: Vec<usize> = (0..children.len()).filter(|&i| pending[i] == 0).collect();
    let mut longest = vec![None; children.len()];
    while let Some(i) = ready.pop() {
        let below = children[i].iter().filter_map(|&c| longest[c]).max();
        longest[i] = Some(1 + below.unwrap_or(0));
        for &p in &parents[i] {
            pending[p] -= 1;
            if pending[p] == 0 {
                ready.push(p);
            }
        }
    }
    longest
}

/// The nodes on a cycle: no chain that starts or ends there is finite. (A node between two
/// cycles counts too; validated snapshots have none.)
pub(crate) fn on_cycles(children: &[Vec<usize>]) -> Vec<bool> {
    let down = longest_chains(children);
    let up = longest_chains(&reversed(children));
    down.iter()
        .zip(&up)
        .map(|(d, u)| d.is_none() && u.is_none())
        .collect()
}

/// Marks every node from which a marked node can be reached.
pub(crate) fn mark_ancestors(children: &[Vec<usize>], marked: &mut [bool]) {
    let parents = reversed(children);
    let mut todo: Vec<usize> = (0..marked.len()).filter(|&i| marked[i]).collect();
    while let Some(i) = todo.pop() {
        for &p in &parents[i] {
            if !marked[p] {
                marked[p] = true;
                todo.push(p);
            }
        }
    }
}

fn reversed(children: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut parents = vec![Vec::new(); children.len()];
    for (i, edges) in children.iter().enumerate() {
        for &c in edges {
            parents[c].push(i);
        }
    }
    parents
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_are_measured_and_cycles_found() {
        // 0 -> 1 -> 2, 0 -> 2; 3 -> 4 <-> 5; 6 alone.
        let g = vec![
            vec![1, 2],
            vec![2],
            vec![],
            vec![4],
            vec![5],
            vec![4],
            vec![],
        ];
        assert_eq!(
            longest_chains(&g),
            [Some(3), Some(2), Some(1), None, None, None, Some(1)]
        );
        assert_eq!(
            on_cycles(&g),
            [false, false, false, false, true, true, false]
        );
        let mut marked = vec![false, false, true, false, false, false, false];
        mark_ancestors(&g, &mut marked);
        assert_eq!(marked, [true, true, true, false, false, false, false]);
    }

    #[test]
    fn a_long_chain_does_not_recurse() {
        let n = 200_000;
        let g: Vec<Vec<usize>> = (0..n)
            .map(|i| if i + 1 < n { vec![i + 1] } else { vec![] })
            .collect();
        assert_eq!(longest_chains(&g)[0], Some(n));
    }
}
