//! Transcript files beside a session: where Claude Code records what hooks do not carry.
//!
//! For now only the subagent sidecar `<session>/subagents/agent-<id>.meta.json`, whose `toolUseId`
//! names the `Agent` call that spawned the subagent.

use std::path::{Path, PathBuf};

/// Where the meta file of `agent_id` lives, given the session's `transcript_path`.
pub fn subagent_meta_path(transcript_path: &str, agent_id: &str) -> Option<PathBuf> {
    if agent_id.is_empty() || agent_id.contains(['/', '\\', '.']) {
        return None; // an id that could walk out of the directory is not an agent id
    }
    let session_dir = Path::new(transcript_path.strip_suffix(".jsonl")?);
    Some(session_dir.join("subagents").join(format!("agent-{agent_id}.meta.json")))
}

/// The `toolUseId` in a meta file's contents.
pub fn spawner_in_meta(contents: &[u8]) -> Option<String> {
    let meta: serde_json::Value = serde_json::from_slice(contents).ok()?;
    meta.get("toolUseId")?.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Read the `Agent` call that spawned `agent_id`, if its meta file is there yet.
pub async fn subagent_spawner(transcript_path: &str, agent_id: &str) -> Option<String> {
    let path = subagent_meta_path(transcript_path, agent_id)?;
    let contents = tokio::fs::read(path).await.ok()?;
    spawner_in_meta(&contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_path_sits_beside_the_transcript() {
        let p = subagent_meta_path("/h/.claude/projects/-p/abc.jsonl", "a7ca175cf2fd2156a").unwrap();
        assert_eq!(p, Path::new("/h/.claude/projects/-p/abc/subagents/agent-a7ca175cf2fd2156a.meta.json"));
        assert!(subagent_meta_path("/x/abc.jsonl", "../../etc").is_none());
        assert!(subagent_meta_path("/x/abc.txt", "a1").is_none());
    }

    #[test]
    fn reads_tool_use_id() {
        let meta = br#"{"agentType":"Explore","toolUseId":"toolu_01Mock15235482140","spawnDepth":1}"#;
        assert_eq!(spawner_in_meta(meta).as_deref(), Some("toolu_01Mock15235482140"));
        assert_eq!(spawner_in_meta(b"garbage"), None);
    }
}
