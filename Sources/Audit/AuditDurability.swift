/// When an audited request may be answered.
public enum AuditDurability: String, Sendable, CaseIterable {
    /// Once its line is on disk (fsync): nothing acknowledged is lost, even to a power cut. The default.
    case fsync
    /// Once its line is in the file (the kernel's page cache), synced right after: nothing
    /// acknowledged is lost if hsmd crashes or is killed, but a power cut or kernel crash can lose
    /// the lines of the last batch. An operator's choice for throughput, never the default.
    case write
}
