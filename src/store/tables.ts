// Row types of the tables the migrations create.
export interface InstanceTable {
  id: string;
  created_at: string;
}

export interface Tables {
  instance: InstanceTable;
}
