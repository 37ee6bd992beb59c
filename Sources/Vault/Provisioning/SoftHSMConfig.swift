/// The SoftHSM2 configuration hsmd writes into its state directory. `tokens/softhsm2.conf.template`
/// in the repository shows the same text with the token directory as a placeholder.
enum SoftHSMConfig {
    static let tokenDirectoryPlaceholder = "@TOKEN_DIRECTORY@"

    static func render(tokenDirectory: String) -> String {
        template.replacingOccurrences(of: tokenDirectoryPlaceholder, with: tokenDirectory)
    }

    /// `file` is the only object store Debian's build offers; slots stay fixed so a token keeps its place.
    static let template = """
        # Written by hsmd on provisioning; hsmd reads it through SOFTHSM2_CONF.
        directories.tokendir = @TOKEN_DIRECTORY@
        objectstore.backend = file
        log.level = ERROR
        slots.removable = false
        slots.mechanisms = ALL

        """
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
