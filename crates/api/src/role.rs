//! Who may call the API: a token's kind and a user token's role.

rampart_model::wire_enum! {
    /// What a user token may do, least privileged first: each role may do everything the one
    /// before it may. The one permission table is `Action::min_role` in the control plane.
    #[derive(PartialOrd, Ord)]
    pub enum Role {
        /// Reads objects, changes, rollouts and the fleet.
        Viewer,
        /// Also submits and withdraws changes, applies ready ones, and rolls back to the LKG.
        Editor,
        /// Also approves and rejects other people's changes, and reads the audit log.
        Approver,
        /// Also manages tokens. Its approvals count like an approver's; it skips no rule.
        Admin,
    }
}

rampart_model::wire_enum! {
    /// Whether a token belongs to a person (or automation acting as one) or to a gateway.
    pub enum TokenKind {
        User,
        Gateway,
    }
}

#[cfg(test)]
mod tests {
    use rampart_model::parse_name;

    use super::*;

    #[test]
    fn an_unknown_role_lists_the_known_ones() {
        let err = parse_name::<Role>("role", "root").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown role `root` (expected viewer, editor, approver, admin)"
        );
    }

    #[test]
    fn roles_are_ordered_by_privilege() {
        assert!(Role::Viewer < Role::Editor);
        assert!(Role::Editor < Role::Approver);
        assert!(Role::Approver < Role::Admin);
    }
}
