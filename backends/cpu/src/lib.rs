pub fn placeholder_to_be_replaced() {}
